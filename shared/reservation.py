"""What a call holds until it is billed: its budget reservations and rate-limit permits.

The chat flow takes holds before the model is called (``budget.BudgetGuard.reserve``, the rate
limits' ``Permit``) and joins them into one ``Reservation``, which the request's billing settles
exactly once with the call's real cost when it flushes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Reservation:
    """A call's holds (budget, rate limits) kept until ``settle`` with the call's real cost."""

    def __init__(self, release: Callable[[float], None] | None = None) -> None:
        self._release = release
        self._lock = threading.Lock()

    def settle(self, actual_cents: float) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release(actual_cents)

    def then(self, other: Reservation) -> Reservation:
        """One reservation that settles both."""

        def both(actual: float) -> None:
            try:
                self.settle(actual)
            finally:
                other.settle(actual)

        return Reservation(both)


NO_RESERVATION = Reservation(None)
