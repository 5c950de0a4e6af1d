import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from infra.console import live_executors
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(pipeline):
    now = timezone.now()
    version = pipeline.current_version

    def make(status, **fields):
        return Run.objects.create(workflow=pipeline, version=version, status=status, **fields)

    make("queued")
    make("queued")
    make("running", owner="web-1:4242", heartbeat_at=now - timedelta(seconds=2))
    make("running", owner="worker-9:77", heartbeat_at=now - timedelta(hours=1))
    make("succeeded", finished_at=now)
    failed = make("failed", finished_at=now, error="step 'fetch' failed: HTTP 502\ntraceback...")
    return failed


def test_it_shows_tier_adapters_queue_executors_and_failures(alice_client, runs):
    response = alice_client.get(reverse("admin:system"))
    assert response.status_code == 200
    html = response.content.decode()
    mode = settings.APPSTRATE_MODE
    assert f'id="tier">Tier {mode.tier}<' in html
    assert f"<code>{mode.executor}</code>" in html
    assert '<span id="queue-depth">2</span>' in html
    assert "web-1:4242" in html and "worker-9:77" in html
    assert 'data-status-count="failed">1<' in html
    assert 'data-status-count="queued">2<' in html
    # The first line of the failure's reason, linked to its run page.
    assert "step &#x27;fetch&#x27; failed: HTTP 502" in html
    assert "traceback" not in html
    assert reverse("admin:runs_run_change", args=[runs.pk]) in html


def test_it_tells_live_executors_from_stale_ones(runs):
    executors = {e["owner"]: e for e in live_executors()}
    assert executors["web-1:4242"]["alive"] is True
    assert executors["worker-9:77"]["alive"] is False
    assert executors["web-1:4242"]["runs"] == 1


def test_it_lets_a_viewer_in_and_keeps_others_out(client, bob, charlie):
    client.force_login(bob)
    assert client.get(reverse("admin:system")).status_code == 200
    client.force_login(charlie)
    assert client.get(reverse("admin:system")).status_code == 403
    client.logout()
    assert client.get(reverse("admin:system")).status_code == 302


def test_it_links_the_system_page_from_every_console_page(alice_client):
    assert 'id="system-link"' in alice_client.get(reverse("admin:index")).content.decode()


@pytest.mark.tier2
def test_it_reports_celery_workers_without_hanging_when_none_answers(alice_client):
    from infra.console import celery_workers

    # No worker consumes this test's private Redis namespace: the ping ends, bounded.
    result = celery_workers()
    assert result["ok"] is False
    assert result["workers"] == []
    assert alice_client.get(reverse("admin:system")).status_code == 200


def test_it_shows_heartbeats_to_the_second(alice_client, runs):
    html = alice_client.get(reverse("admin:system")).content.decode()
    assert re.search(r"live</span>\s*<span class=\"muted\">[0-9] s ago", html)
