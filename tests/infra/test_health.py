import pytest


def test_it_answers_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_answers_readyz_when_services_are_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["services"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_redirects_root_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
