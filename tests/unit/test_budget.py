"""The budget's decisions: worst cases reserved against the payer's ledger, reconciled with Lago (no server).

The ledger is kept in memory (``LocalLedgerStore``: the same transactions as Firestore's);
``tests/unit/test_ledger.py`` tests its arithmetic, ``tests/test_ledger.py`` the Firestore emulator.

Lago's side is a plain object holding the payer's ``Account`` as Lago would report it: the
arithmetic, not the Lago client, is under test here (test_billing.py drives the real one).
"""

from __future__ import annotations

import time

import pytest

from shared.budget import BudgetGuard, calendar_month
from shared.errors import ApiError, ErrorCode
from shared.lago_accounts import Account
from shared.ledger import LocalLedgerStore, SpendLeases, ledger_key
from shared.reservation import NO_RESERVATION, Reservation

# One call's worst case, in cents (what ``pricing`` computes; the budget takes the figure).
WORST_CENTS = 6.5


class LagoSays:
    """What ``LagoAccounts.account`` returns for every payer."""

    def __init__(self, account: Account | None) -> None:
        self.current = account

    def account(self, payer: str) -> Account | None:
        return self.current


def account(amount_cents: int = 0, budget_cents: int | None = None) -> Account:
    return Account(
        amount_cents, amount_cents, "USD", None, None, budget_cents=budget_cents, fetched_at=time.monotonic()
    )


def guard(lago: LagoSays, limit_cents: int | None, store: LocalLedgerStore | None = None) -> BudgetGuard:
    leases = SpendLeases(store or LocalLedgerStore())
    return BudgetGuard(lago, leases, default_limit_cents=limit_cents)  # type: ignore[arg-type]


def reserve(budget: BudgetGuard) -> Reservation:
    return budget.reserve("payer", WORST_CENTS)


def test_a_call_whose_worst_case_fits_is_let_through_holding_its_worst_case_in_the_ledger() -> None:
    store = LocalLedgerStore()
    reservation = reserve(guard(LagoSays(account(amount_cents=0)), limit_cents=20, store=store))
    held = store.read(ledger_key("payer", calendar_month()))
    assert held is not None and held.limit == 20
    assert held.leased >= WORST_CENTS, "the ledger holds at least the call's worst case until it is settled"
    assert held.available <= 20 - WORST_CENTS
    assert reservation is not NO_RESERVATION


def test_a_call_that_could_pass_the_limit_is_refused_with_402_before_it_starts() -> None:
    with pytest.raises(ApiError) as raised:
        reserve(guard(LagoSays(account(amount_cents=20 - int(WORST_CENTS))), limit_cents=20))
    assert raised.value.code is ErrorCode.BUDGET_EXCEEDED
    assert raised.value.code.status == 402


def test_calls_in_flight_count_so_concurrent_calls_cannot_all_slip_past() -> None:
    budget = guard(LagoSays(account()), limit_cents=int(WORST_CENTS * 2.5))
    reserve(budget)
    reserve(budget)
    with pytest.raises(ApiError):
        reserve(budget)


def test_settling_releases_the_reservation_and_keeps_the_real_cost() -> None:
    budget = guard(LagoSays(account()), limit_cents=int(WORST_CENTS * 1.5))
    reservation = reserve(budget)
    reservation.settle(1.0)  # what the call really cost
    reservation.settle(1.0)  # idempotent: a second settle changes nothing
    reserve(budget)  # 1 cent spent: another worst case fits
    with pytest.raises(ApiError):
        reserve(budget)


def test_spending_lago_has_already_seen_is_not_counted_twice() -> None:
    lago = LagoSays(account())
    budget = guard(lago, limit_cents=100)
    budget.reserve("payer", WORST_CENTS).settle(30.0)
    lago.current = account(amount_cents=30)  # a fresher read of Lago that includes the call
    budget.reserve("payer", 63.0)  # fits in 70, not in 40


def test_usage_lago_reports_beyond_the_ledgers_counts() -> None:
    lago = LagoSays(account())
    budget = guard(lago, limit_cents=100)
    reserve(budget).settle(0.0)
    lago.current = account(amount_cents=95)  # spent elsewhere on the same metric
    with pytest.raises(ApiError):
        reserve(budget)


def test_the_customer_s_own_budget_overrides_the_default_limit() -> None:
    budget = guard(LagoSays(account(budget_cents=1_000)), limit_cents=1)
    reserve(budget)
    assert budget.remaining("payer") == (1_000, 1_000)


def test_without_an_account_there_is_no_remaining_figure_and_only_the_default_limit() -> None:
    budget = guard(LagoSays(None), limit_cents=100)
    assert budget.remaining("payer") is None
    reserve(budget)


def test_without_a_limit_nothing_is_held_and_settling_writes_nothing() -> None:
    store = LocalLedgerStore()
    reservation = reserve(guard(LagoSays(None), limit_cents=None, store=store))
    reservation.settle(5.0)
    assert store.writes == 0 and store.read(ledger_key("payer", calendar_month())) is None


def test_joined_reservations_settle_each_part_once_and_the_placeholder_adds_nothing() -> None:
    settled: list[tuple[str, float]] = []
    payer = Reservation(lambda cents: settled.append(("payer", cents)))
    project = Reservation(lambda cents: settled.append(("project", cents)))
    joined = NO_RESERVATION.then(payer).then(project)
    joined.settle(5.0)
    joined.settle(7.0)  # a second settle (a retried flush) changes nothing
    assert settled == [("payer", 5.0), ("project", 5.0)]
    NO_RESERVATION.settle(5.0)
