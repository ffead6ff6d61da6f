"""Spending limits for the current billing period, enforced before the model is called.

Each call reserves its worst case (``pricing.estimate.worst_case_cost``: the estimated prompt
and the completion limit at the dearest rates they can be billed at) and settles its real cost
when it is billed. The reservation is made against the shared ledger
(``ledger.py``: Firestore, the same figure on every instance, spent through leased slices), so
the limit holds exactly across instances: see that module for why and at what cost.

Two limits, each its own ledger:
- the payer's, per Lago billing period: ``CHAT_BUDGET_CENTS``, or the customer's
  ``chat_budget_cents`` metadata in Lago; reconciled with Lago's current usage;
- the project's, per calendar month (UTC) across all payers: ``CHAT_PROJECT_BUDGET_CENTS``.

Amounts are in cents of the model cost ``pricing`` computes (the Lago plan is expected to price the
``response_cost`` it receives at cost; see docs/security.md). Lago being unreachable does not stop
chat: the ledger decides from the last usage it read (a payer never read falls back to the
default limit and the calendar month). Firestore being unreachable does: a limit that cannot be
checked answers 503 rather than let spending through.
"""

from __future__ import annotations

import datetime as dt
import math

from .errors import ApiError, ErrorCode
from .lago_accounts import LagoAccounts
from .ledger import SpendLeases
from .logs import log, uid_hash
from .reservation import NO_RESERVATION, Reservation

PROJECT_PAYER = "__project__"  # not a Firebase uid (those are 28 characters of [A-Za-z0-9])


def calendar_month(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-01T00:00:00Z")


class BudgetGuard:
    """Per instance: reserves calls against the payer's and the project's ledgers."""

    def __init__(
        self,
        accounts: LagoAccounts | None,
        leases: SpendLeases,
        *,
        default_limit_cents: int | None,
        project_limit_cents: int | None = None,
    ) -> None:
        self._accounts = accounts
        self._leases = leases
        self._default_limit = default_limit_cents
        self._project_limit = project_limit_cents
        self._project_logged = False

    def reserve(self, payer: str, estimate: float, cap_cents: int | None = None) -> Reservation:
        """Hold ``estimate`` (the call's worst case, in cents), or raise a 402 naming the limit
        that is reached. ``cap_cents`` lowers the payer's limit for this call (a new account's
        smaller budget)."""
        try:
            payer_hold = self._reserve_payer(payer, estimate, cap_cents)
            try:
                project_hold = self._reserve_project(estimate)
            except BaseException:
                payer_hold.settle(0.0)
                raise
        except ApiError:
            raise
        except Exception as error:  # noqa: BLE001 - Firestore failing: a limit we cannot check refuses
            log("ERROR", "budget_ledger_unavailable", error_class=type(error).__name__)
            raise ApiError(
                ErrorCode.UNAVAILABLE,
                "Chat is unavailable: spending limits cannot be checked right now.",
                headers={"Retry-After": "5"},
            ) from None
        return payer_hold.then(project_hold)

    def _limit_for(self, payer: str, cap_cents: int | None) -> tuple[int | None, str, float]:
        account = self._accounts.account(payer) if self._accounts is not None else None
        if account is None:
            return _limit(self._default_limit, cap_cents), calendar_month(), 0.0
        limit = account.budget_cents if account.budget_cents is not None else self._default_limit
        return _limit(limit, cap_cents), account.from_datetime or calendar_month(), float(account.amount_cents)

    def _reserve_payer(self, payer: str, estimate: float, cap_cents: int | None) -> Reservation:
        limit, period, lago = self._limit_for(payer, cap_cents)
        if limit is None:
            return NO_RESERVATION
        key = self._leases.reserve(payer, period, estimate, limit=limit, lago=lago)
        if key is None:
            log("INFO", "budget_exceeded", payer_hash=uid_hash(payer), limit_cents=limit, period=period)
            message = "You have reached your usage limit for this billing period."
            if limit == cap_cents:
                message = "You have reached the usage limit of new accounts; it rises once your account is older."
            raise ApiError(ErrorCode.BUDGET_EXCEEDED, message)
        return Reservation(lambda actual: self._leases.settle(key, estimate, actual))

    def _reserve_project(self, estimate: float) -> Reservation:
        if self._project_limit is None:
            return NO_RESERVATION
        key = self._leases.reserve(PROJECT_PAYER, calendar_month(), estimate, limit=self._project_limit)
        if key is None:
            if not self._project_logged:
                self._project_logged = True
                log("ERROR", "project_budget_reached", limit_cents=self._project_limit, period=calendar_month())
            raise ApiError(
                ErrorCode.PROJECT_BUDGET_REACHED,
                "The service has reached its spending limit for this month; try again next month.",
            )
        return Reservation(lambda actual: self._leases.settle(key, estimate, actual))

    def remaining(self, payer: str, cap_cents: int | None = None) -> tuple[int, int] | None:
        """``(limit, remaining)`` in cents for the usage view, from Lago's usage; None without it."""
        if self._accounts is None:
            return None
        account = self._accounts.account(payer)
        if account is None:
            return None
        limit = account.budget_cents if account.budget_cents is not None else self._default_limit
        limit = _limit(limit, cap_cents)
        if limit is None:
            return None
        return limit, max(0, math.floor(limit - account.amount_cents))


def _limit(limit: int | None, cap_cents: int | None) -> int | None:
    """The payer's limit lowered to ``cap_cents``; None when neither is set (no limit)."""
    if cap_cents is None:
        return limit
    return cap_cents if limit is None else min(limit, cap_cents)
