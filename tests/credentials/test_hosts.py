import pytest

from credentials.hosts import entry_error, host_allowed

ALLOWED = ["api.example.com", "*.corp.test", "127.0.0.1:8080", "[::1]"]


@pytest.mark.parametrize(
    "host",
    [
        "api.example.com",
        "API.Example.com.",
        "api.example.com:443",
        "a.corp.test",
        "x.y.corp.test",
        "127.0.0.1:8080",
        "[::1]:9000",
        "::1",
    ],
)
def test_it_allows_listed_hosts(host):
    assert host_allowed(host, ALLOWED)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "evil-api.example.com",
        "api.example.com.evil.test",
        "corp.test",
        "evilcorp.test",
        "127.0.0.1",
        "127.0.0.1:8081",
        "",
        "[::2]",
    ],
)
def test_it_refuses_other_hosts(host):
    assert not host_allowed(host, ALLOWED)


@pytest.mark.parametrize(
    "entry", ["http://api.example.com", "api.example.com/path", "*", "*.", "a b", "x:99999", "**.x"]
)
def test_it_rejects_invalid_entries(entry):
    assert entry_error(entry)


@pytest.mark.parametrize("entry", ["api.example.com", "*.example.com", "10.0.0.1:443", "[::1]:80"])
def test_it_accepts_valid_entries(entry):
    assert entry_error(entry) is None
