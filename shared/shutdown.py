"""The instance's end: Cloud Run sends SIGTERM, and SIGKILL 10 s later.

From SIGTERM on, the instance takes no new work (gunicorn stops accepting; a request on a
kept-alive connection gets a 503 with ``Retry-After``), streams still going after
``FINISH_WITHIN_S`` end with an error event at their next chunk (those about to end finish
normally), each bills what it sent as partial, and every flush is bounded so that all of it is
in Lago, or else in the outbox, by ``FLUSHED_BY_S``. A stream whose provider sends nothing
more is billed anyway at ``SETTLE_STUCK_AT_S``, from another thread (its client connection
ends with the process). gunicorn's graceful timeout (30 s) is longer than Cloud Run's
10 s, so it never cuts that short.

One per process (a signal reaches a process), installed by ``functions/main.py``: the hook
wraps the SIGTERM handler gunicorn's worker installs after it forks (its ``init_signals``),
because functions-framework gives no way to add gunicorn's own hooks. What still runs after SIGKILL: nothing (see docs/lago.md).
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from .logs import log

FINISH_WITHIN_S = 2.0  # a stream still going this long after SIGTERM is ended
SETTLE_STUCK_AT_S = 4.5  # streams not billed by then (their provider stalls) are billed from outside
FLUSHED_BY_S = 8.0  # every event in Lago or in the outbox this long after SIGTERM
_LAGO_SHARE_S = 5.0  # of which Lago gets until here; the outbox write has the rest
_LAST_TRY_S = 0.5  # what a call that ends later still gets, for Lago and for the outbox


class Shutdown:
    """Whether, and since when, this process is shutting down."""

    def __init__(self) -> None:
        self._began: float | None = None
        self._lock = threading.Lock()
        self._settles: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()

    def track(self, settle: Callable[[], None]) -> Callable[[], None]:
        """Keep a stream's (idempotent, thread-safe) ``settle`` until it is done; returns the untrack."""
        key = next(self._ids)
        with self._lock:
            self._settles[key] = settle
        return lambda: self._untrack(key)

    def _untrack(self, key: int) -> None:
        with self._lock:
            self._settles.pop(key, None)

    def begin(self) -> None:
        """SIGTERM arrived. Called from the signal handler, so it only notes the time and starts
        a thread for the rest (logging, and billing the streams that get stuck)."""
        with self._lock:
            if self._began is not None:
                return
            self._began = time.monotonic()
        threading.Thread(target=self._settle_stuck, name="shutdown", daemon=True).start()

    def _settle_stuck(self) -> None:
        with self._lock:
            streams = len(self._settles)
        log("WARNING", "instance_shutting_down", streams=streams)
        assert self._began is not None
        time.sleep(max(0.0, self._began + SETTLE_STUCK_AT_S - time.monotonic()))
        with self._lock:
            stuck = list(self._settles.values())
        if stuck:
            log("WARNING", "shutdown_settling_stuck_streams", streams=len(stuck))
        workers = [threading.Thread(target=settle, daemon=True) for settle in stuck]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.0, self._began + FLUSHED_BY_S - time.monotonic()))

    @property
    def draining(self) -> bool:
        return self._began is not None

    def stream_must_end(self) -> bool:
        """A stream still going now ends (with an error event) and bills what it sent."""
        return self._began is not None and time.monotonic() >= self._began + FINISH_WITHIN_S

    def lago_deadline(self, deadline: float) -> float:
        """A flush's Lago deadline, brought forward so the outbox write still fits before the
        end (a call that ends late still gets one short try)."""
        if self._began is None:
            return deadline
        return min(deadline, max(self._began + _LAGO_SHARE_S, time.monotonic() + _LAST_TRY_S))

    def outbox_timeout(self, timeout_s: float) -> float:
        """An outbox write's timeout, cut to what is left before everything must be flushed."""
        if self._began is None:
            return timeout_s
        return min(timeout_s, max(_LAST_TRY_S, self._began + FLUSHED_BY_S - time.monotonic()))


SHUTDOWN = Shutdown()


def hook_worker_sigterm(shutdown: Shutdown = SHUTDOWN) -> bool:
    """Have gunicorn's worker tell ``shutdown`` of its SIGTERM, then do its own handling (stop
    accepting, wait for the requests in flight). Called in the master, before the fork, so every
    worker inherits it. False when not under gunicorn (the Flask development server)."""
    try:
        from gunicorn.workers.base import Worker  # type: ignore[import-untyped]
    except ImportError:
        return False
    if getattr(Worker.init_signals, "_tells_shutdown", False):
        return True
    install_gunicorn_handlers = Worker.init_signals

    def init_signals(worker: Any) -> None:
        install_gunicorn_handlers(worker)
        gunicorn_handler = signal.getsignal(signal.SIGTERM)

        def on_sigterm(sig: int, frame: Any) -> None:
            shutdown.begin()
            if callable(gunicorn_handler):
                gunicorn_handler(sig, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
        signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn has it: requests' system calls go on

    init_signals._tells_shutdown = True  # type: ignore[attr-defined]
    Worker.init_signals = init_signals
    return True
