"""The console in headless Chromium against a real daphne: what an operator and a viewer see."""

import re

import pytest
from playwright.sync_api import expect

from runs import services
from runs.models import Run
from tests.e2e.conftest import login, screenshot, set_served_password
from tests.tier2_processes import wait_for
from workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_TIMEOUT = 60_000  # ms: the machine running the suite is shared and slow at times


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_superuser("olivia", "o@example.com", "password")
    set_served_password(user)
    return user


@pytest.fixture
def viewer(bob):
    set_served_password(bob)
    return bob


def workflow_url(server, slug):
    return f"{server.url}/admin/workflows/workflow/{Workflow.objects.get(slug=slug).pk}/change/"


def mark_page(page):
    # Set on the loaded document: still there at the end means the page never reloaded.
    page.evaluate("window.__sameDocument = 'yes'")


def test_it_lets_an_operator_start_the_demo_and_watch_it_live(
    page, console_server, demo_workflows, operator
):
    login(page, console_server, "olivia")
    page.goto(workflow_url(console_server, "demo-pipeline"))
    expect(page.locator("#workflow-diagram svg.dag")).to_be_visible()
    expect(page.locator('#workflow-diagram g.node[data-step="transform"]')).to_be_visible()
    screenshot(page, "workflow-page.png")

    page.click("#run-now")
    expect(page.locator("input[name=count]")).to_have_value("5")
    # A wrong value comes back as an error on the field, and starts nothing.
    page.fill("input[name=count]", "0")
    page.click("#start-run")
    expect(page.locator(".field-count .errorlist")).to_be_visible()
    screenshot(page, "run-now-form.png")
    assert not Run.objects.exists()
    page.fill("input[name=count]", "6")
    page.click("#start-run")

    page.wait_for_url(re.compile(r"/admin/runs/run/\d+/change/$"))
    mark_page(page)
    expect(page.locator("#live-indicator")).to_have_text("live", timeout=LONG_TIMEOUT)
    # Steps change status on the page and in the picture, without a reload.
    expect(page.locator('#timeline li.step[data-step="generate"]')).to_have_attribute(
        "data-status", "succeeded", timeout=LONG_TIMEOUT
    )
    expect(page.locator('#run-diagram g.node[data-step="generate"]')).to_have_attribute(
        "data-status", "succeeded"
    )
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=LONG_TIMEOUT)
    expect(page.locator("#progress-text")).to_have_text("7 of 7 steps done")
    expect(page.locator("#run-progress")).to_have_attribute("aria-valuenow", "7")
    expect(page.locator('#timeline li.step[data-step="small"]')).to_have_attribute(
        "data-status", re.compile("succeeded|skipped")
    )
    expect(page.locator("#run-output")).to_be_visible()
    expect(page.locator("#retry-run")).to_be_visible()
    expect(page.locator("#cancel-run")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") == "yes"
    screenshot(page, "run-page-succeeded.png")
    run = Run.objects.get()
    assert run.status == "succeeded"
    assert run.input["count"] == 6


def test_it_lets_an_operator_cancel_a_long_run_while_its_logs_stream(
    page, console_server, demo_workflows, operator
):
    login(page, console_server, "olivia")
    page.goto(workflow_url(console_server, "demo-long"))
    page.click("#run-now")
    page.fill("input[name=seconds]", "120")
    page.click("#start-run")
    page.wait_for_url(re.compile(r"/admin/runs/run/\d+/change/$"))
    mark_page(page)
    step = page.locator('#timeline li.step[data-step="sleep"]')
    expect(step).to_have_attribute("data-status", "running", timeout=LONG_TIMEOUT)
    expect(page.locator("#run-status")).to_have_text("Running")
    # The script's output arrives line by line while the step runs.
    expect(step.locator("[data-field=logs]")).to_contain_text(
        "progress 2/120", timeout=LONG_TIMEOUT
    )
    assert page.evaluate("window.__sameDocument") == "yes"
    screenshot(page, "run-page-live.png")

    # A second tab on the runs list follows the status change without reloading.
    runs_list = page.context.new_page()
    runs_list.goto(f"{console_server.url}/admin/runs/run/")
    run = Run.objects.get()
    pill = runs_list.locator(f'[data-run-status="{run.pk}"]')
    expect(pill).to_have_text("Running")
    expect(runs_list.locator("#live-indicator")).to_have_text("live", timeout=LONG_TIMEOUT)
    mark_page(runs_list)

    page.bring_to_front()
    page.click("#cancel-run")
    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=LONG_TIMEOUT)
    expect(pill).to_have_text("Cancelled", timeout=LONG_TIMEOUT)
    assert runs_list.evaluate("window.__sameDocument") == "yes"
    screenshot(runs_list, "runs-list.png")
    expect(page.locator("#cancel-run")).to_be_hidden()
    expect(page.locator("#retry-run")).to_be_visible()
    assert Run.objects.get().status == "cancelled"


def test_it_shows_a_viewer_runs_without_run_or_cancel_actions(
    page, console_server, demo_workflows, viewer
):
    workflow = Workflow.objects.get(slug="demo-long")
    run = Run.objects.create(
        workflow=workflow, version=workflow.current_version, status=Run.Status.RUNNING
    )
    login(page, console_server, "bob")
    page.goto(f"{console_server.url}/admin/runs/run/{run.pk}/change/")
    expect(page.locator("#run-status")).to_have_text("Running")
    expect(page.locator("#live-indicator")).to_have_text("live", timeout=LONG_TIMEOUT)
    for action in ("#cancel-run", "#retry-run", "#resume-run"):
        expect(page.locator(action)).to_have_count(0)
    page.goto(f"{console_server.url}/admin/runs/run/")
    expect(page.locator(f'[data-run-status="{run.pk}"]')).to_be_visible()
    expect(page.locator("select[name=action] option[value=cancel_selected]")).to_have_count(0)
    page.goto(workflow_url(console_server, "demo-long"))
    expect(page.locator("#workflow-diagram svg.dag")).to_be_visible()
    expect(page.locator("#run-now")).to_have_count(0)
    page.goto(f"{console_server.url}/admin/")
    expect(page.locator("#content-main")).not_to_contain_text("Credentials")
    # The console's own CSS and JS come from the project (no CDN).
    for asset in ("appstrate/console.css", "appstrate/run_page.js", "appstrate/runs_list.js"):
        assert page.request.get(f"{console_server.url}/static/{asset}").status == 200


def test_it_shows_the_system_page(page, console_server, demo_workflows, operator):
    workflow = Workflow.objects.get(slug="demo-flaky")
    Run.objects.create(
        workflow=workflow,
        version=workflow.current_version,
        status=Run.Status.FAILED,
        error="step 'unreliable' failed after 4 attempts: flaky failure",
    )
    long = Workflow.objects.get(slug="demo-long")
    running = services.start_run(long, input={"seconds": 60}, triggered_by=operator)
    wait_for(
        lambda: Run.objects.get(pk=running.pk).heartbeat_at is not None, 60, message="a heartbeat"
    )
    login(page, console_server, "olivia")
    page.click("#system-link")
    expect(page.locator("#tier")).to_contain_text("Tier")
    expect(page.locator("#failures")).to_contain_text("flaky failure")
    # The executor (a Celery pool process at tier 2, the serving process below) is live.
    expect(page.locator("#executors")).to_contain_text("live")
    screenshot(page, "system-page.png")
    services.cancel_run(running, by=operator)


@pytest.mark.tier2
def test_it_resumes_the_live_stream_after_the_server_restarts(
    page, console_server, demo_workflows, operator
):
    workflow = Workflow.objects.get(slug="demo-long")
    run = services.start_run(workflow, input={"seconds": 25}, triggered_by=operator)
    login(page, console_server, "olivia")
    page.goto(f"{console_server.url}/admin/runs/run/{run.pk}/change/")
    mark_page(page)
    logs = page.locator('#timeline li.step[data-step="sleep"] [data-field=logs]')
    expect(logs).to_contain_text("progress 2/25", timeout=LONG_TIMEOUT)
    # The web process goes away while the worker keeps executing and publishing.
    console_server.stop()
    expect(page.locator("#live-indicator")).to_have_text("reconnecting…")
    wait_for(
        lambda: (
            "progress 5/25"
            in "".join(
                Run.objects.get(pk=run.pk)
                .events.filter(type="step.log")
                .values_list("payload__text", flat=True)
            )
        ),
        60,
        message="the worker to log on while the page is disconnected",
    )
    console_server.start()
    expect(page.locator("#live-indicator")).to_have_text("live", timeout=LONG_TIMEOUT)
    expect(logs).to_contain_text("progress 8/25", timeout=LONG_TIMEOUT)
    # Still streaming from events (the stored logs only land when the step ends): every line
    # once, none missing across the gap.
    assert Run.objects.get(pk=run.pk).status == "running"
    lines = [line for line in logs.inner_text().splitlines() if line.strip()]
    count = len(lines)
    assert lines == [f"progress {i}/25" for i in range(1, count + 1)]
    assert page.evaluate("window.__sameDocument") == "yes"
    services.cancel_run(run, by=operator)
