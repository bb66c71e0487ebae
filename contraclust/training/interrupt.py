"""Ctrl-C during training: finish the step, save, then stop.

Python raises :class:`KeyboardInterrupt` wherever the program happens to be, which
may be half-way through an optimiser update; a checkpoint written then would hold
weights that no step produced. While training, SIGINT therefore only sets a flag;
the loop looks at it between steps, writes a checkpoint from which ``--resume``
continues exactly, and raises :class:`TrainingInterrupted`. A second Ctrl-C stops
at once, as usual.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by the user; the message says what was kept."""


class StopRequest:
    """A SIGINT handler that records the request instead of raising at once."""

    def __init__(self, enabled: bool = True) -> None:
        # Handlers can only be installed from the main thread (not under a thread pool
        # or in the DDP workers, which keep the default behaviour).
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._installed = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> StopRequest:
        # A process started with Ctrl-C ignored (nohup, background jobs) keeps ignoring it.
        if self.enabled and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def restore(self) -> None:
        if self._installed:
            # None: the previous handler was not set from Python; the default stands in
            previous = signal.default_int_handler if self._previous is None else self._previous
            signal.signal(signal.SIGINT, previous)
            self._installed = False
