"""Per-payer spending limits for the current billing period, enforced before the model is called.

Spent = Lago's current usage + this instance's calls settled since that usage was read + the
calls in flight here (reserved at their worst-case cost). A call is let through only if its
reservation fits under the limit, so concurrent requests of one payer on one instance cannot
all slip past it. Across instances each only knows its own calls in flight: the overshoot is
bounded by (other instances' concurrent calls x one call's worst case) plus Lago's ingestion lag.

Amounts are in cents of the model cost LiteLLM computes (the Lago plan is expected to price the
``response_cost`` it receives at cost; see the README). Lago being unreachable lets calls
through (logged): chat keeps working and every call is still billed.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from .billing_event import price
from .errors import ApiError, ErrorCode
from .lago_accounts import Account, LagoAccounts
from .logs import log, uid_hash


@dataclass
class _PayerSpend:
    """One payer's calls in flight (reserved) and recently settled on this instance."""

    reserved: float = 0.0
    settled: list[tuple[float, float]] = field(default_factory=list)  # (when, cents)


class Reservation:
    """A call's worst-case cost held against the payer's budget until ``settle``."""

    def __init__(self, guard: BudgetGuard | None, payer: str, cents: float) -> None:
        self._guard, self._payer, self.cents = guard, payer, cents
        self._open = guard is not None

    def settle(self, actual_cents: float) -> None:
        if self._open and self._guard is not None:
            self._open = False
            self._guard._settle(self._payer, self.cents, actual_cents)


NO_RESERVATION = Reservation(None, "", 0.0)


class BudgetGuard:
    """Per instance: the payers' reservations and recent spending."""

    def __init__(self, accounts: LagoAccounts, default_limit_cents: int | None) -> None:
        self._accounts = accounts
        self._default_limit = default_limit_cents
        self._lock = threading.Lock()
        self._spend: dict[str, _PayerSpend] = {}

    def reserve(
        self, payer: str, model: str, prompt_tokens: int, max_tokens: int, cap_cents: int | None = None
    ) -> Reservation:
        """Hold the call's worst case, or raise a 402 when the payer's limit is reached.

        ``cap_cents`` lowers the limit for this call (a new account's smaller budget)."""
        estimate = (price(model, prompt_tokens, max_tokens) or 0.0) * 100
        account = self._accounts.account(payer)
        limit = _limit(self._limit_for(account), cap_cents)
        if limit is None:
            return NO_RESERVATION
        with self._lock:
            spend = self._spend.setdefault(payer, _PayerSpend())
            if account is not None:  # spending Lago has seen by now is in its usage already
                spend.settled = [(t, c) for t, c in spend.settled if t >= account.fetched_at]
            lago = account.amount_cents if account else 0
            spent = lago + sum(c for _, c in spend.settled) + spend.reserved
            if spent >= limit or spent + estimate > limit:
                log(
                    "INFO",
                    "budget_exceeded",
                    payer_hash=uid_hash(payer),
                    limit_cents=limit,
                    spent_cents=math.ceil(spent),
                )
                message = "You have reached your usage limit for this billing period."
                if limit == cap_cents:
                    message = "You have reached the usage limit of new accounts; it rises once your account is older."
                raise ApiError(ErrorCode.BUDGET_EXCEEDED, message)
            spend.reserved += estimate
        return Reservation(self, payer, estimate)

    def _limit_for(self, account: Account | None) -> int | None:
        if account is not None and account.budget_cents is not None:
            return account.budget_cents
        return self._default_limit

    def _settle(self, payer: str, reserved: float, actual: float) -> None:
        with self._lock:
            spend = self._spend.setdefault(payer, _PayerSpend())
            spend.reserved = max(0.0, spend.reserved - reserved)
            if actual > 0:
                spend.settled.append((time.monotonic(), actual))

    def remaining(self, payer: str, cap_cents: int | None = None) -> tuple[int, int] | None:
        """``(limit, remaining)`` in cents for the usage view; None without an account or a limit."""
        account = self._accounts.account(payer)
        if account is None:
            return None
        limit = _limit(self._limit_for(account), cap_cents)
        if limit is None:
            return None
        with self._lock:
            spend = self._spend.get(payer, _PayerSpend())
            local = sum(c for t, c in spend.settled if t >= account.fetched_at) + spend.reserved
        return limit, max(0, math.floor(limit - account.amount_cents - local))


def _limit(limit: int | None, cap_cents: int | None) -> int | None:
    """The payer's limit lowered to ``cap_cents``; None when neither is set (no limit)."""
    if cap_cents is None:
        return limit
    return cap_cents if limit is None else min(limit, cap_cents)
