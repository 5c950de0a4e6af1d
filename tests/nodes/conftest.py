import threading

import pytest

from workflows.nodes.base import StepContext


@pytest.fixture
def make_ctx():
    """A StepContext as the engine builds it: config already rendered, a cancel event."""

    def make(config, *, policies=None, timeout=None, attempt=1, slug="", logs=None):
        return StepContext(
            run_id=0,
            step_id="step",
            attempt=attempt,
            config=config,
            workflow_policies=policies or {"allow_private_network": False},
            timeout_seconds=timeout,
            cancel=threading.Event(),
            log=logs.append if logs is not None else None,
            workflow_slug=slug,
        )

    return make
