"""Turning SIGINT/SIGTERM into a stop flag that long-running commands poll."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event set by SIGINT or SIGTERM; restore the old handlers after.

    >>> with stop_on_signals() as stop:
    ...     stop.is_set()
    False
    """
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        # Not stop.set() here: the handler runs on the main thread, which may be
        # inside stop.wait() holding the event's lock; a second signal then
        # deadlocks it (seen with Ctrl-C and SIGTERM together). Another thread sets it.
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
