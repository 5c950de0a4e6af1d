"""The storage port's contract, driven through the local and the S3 implementation alike."""

import urllib.request
import uuid

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

from infra.registry import get_storage


@pytest.fixture(
    params=[
        "local",
        pytest.param("s3", marks=pytest.mark.tier3),
    ]
)
def storage(request, tmp_path):
    if request.param == "local":
        return FileSystemStorage(location=tmp_path, base_url="/files/")
    # The tier 3 pass configures S3 from the environment; the port must hand out S3Storage.
    storage = get_storage()
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture
def prefix():
    # Both xdist workers share one bucket: keep each test's keys apart.
    return f"contract/{uuid.uuid4().hex}"


def test_it_saves_and_opens_a_file(storage, prefix):
    name = storage.save(f"{prefix}/hello.txt", ContentFile(b"hello, storage"))
    with storage.open(name) as handle:
        assert handle.read() == b"hello, storage"
    assert storage.size(name) == len(b"hello, storage")


def test_it_reports_existence_and_deletes(storage, prefix):
    name = storage.save(f"{prefix}/gone.txt", ContentFile(b"x"))
    assert storage.exists(name)
    storage.delete(name)
    assert not storage.exists(name)
    assert not storage.exists(f"{prefix}/never-saved.txt")


def test_it_never_overwrites_an_existing_name(storage, prefix):
    first = storage.save(f"{prefix}/same.txt", ContentFile(b"one"))
    second = storage.save(f"{prefix}/same.txt", ContentFile(b"two"))
    # It should keep both files under different names.
    assert first != second
    with storage.open(first) as handle:
        assert handle.read() == b"one"
    with storage.open(second) as handle:
        assert handle.read() == b"two"


def test_it_lists_saved_files(storage, prefix):
    storage.save(f"{prefix}/a.txt", ContentFile(b"a"))
    storage.save(f"{prefix}/sub/b.txt", ContentFile(b"b"))
    dirs, files = storage.listdir(prefix)
    assert files == ["a.txt"]
    assert dirs == ["sub"]


def test_it_gives_a_url_naming_the_file(storage, prefix):
    name = storage.save(f"{prefix}/report.json", ContentFile(b'{"ok": true}'))
    assert name.rsplit("/", 1)[-1] in storage.url(name)


@pytest.mark.tier3
def test_it_serves_the_s3_url_with_the_content():
    storage = get_storage()
    name = storage.save(f"contract/{uuid.uuid4().hex}/page.txt", ContentFile(b"signed"))
    # A signed URL: anyone holding it may read the object, with no other credentials.
    assert settings.S3_ENDPOINT_URL.startswith("http://127.0.0.1")
    with urllib.request.urlopen(storage.url(name), timeout=5) as response:
        assert response.read() == b"signed"
