"""The pub-sub port: cancel signals from the process that asks to the process that executes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


class PubSub(ABC):
    @abstractmethod
    def publish_cancel(self, run_id: int) -> None:
        """Tell whichever process executes `run_id` to cancel it. Best effort, never raises."""

    @abstractmethod
    def subscribe_cancel(self, callback: Callable[[int], None]) -> None:
        """Call `callback(run_id)` for every cancel published from now on, in any process of
        this deployment. The callback runs on a background thread and must be quick."""
