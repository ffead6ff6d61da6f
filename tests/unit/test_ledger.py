"""The spend ledger's arithmetic (pure) and its leases across instances, in the product's in-memory
store (``LocalLedgerStore``: the same transactions as Firestore's). Instances sharing the Firestore
emulator: tests/test_ledger.py."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ledger import (
    Exchange,
    LeaseSettings,
    LedgerState,
    LocalLedgerStore,
    SpendLeases,
    ledger_key,
    settle_exchange,
)

TTL = 120.0


def ask(
    need: float, want: float = 0.0, *, returning: str | None = None, used: float = 0.0, now: float = 0.0
) -> Exchange:
    return Exchange(returning, used, uuid.uuid4().hex, need, max(want, need), 100.0, 0.0, now, TTL)


# --- the arithmetic -------------------------------------------------------------------------


def test_a_slice_is_what_was_wanted_when_it_is_at_most_half_of_what_remains() -> None:
    state = LedgerState()
    assert settle_exchange(state, ask(5, 30)) == 30
    assert (state.leased, state.available) == (30, 70)


def test_a_slice_is_at_most_half_of_what_remains_so_one_instance_cannot_hold_it_all() -> None:
    state = LedgerState()
    assert settle_exchange(state, ask(5, 500)) == 50
    assert settle_exchange(state, ask(5, 500)) == 25


def test_a_call_bigger_than_half_still_gets_its_worst_case_when_it_fits() -> None:
    state = LedgerState(reported=40)
    assert settle_exchange(state, ask(55, 55)) == 55
    assert state.available == pytest.approx(5)


def test_a_grant_never_exceeds_what_remains_and_a_call_that_does_not_fit_is_refused() -> None:
    state = LedgerState(reported=97)
    granted = settle_exchange(state, ask(6, 6))
    assert granted == pytest.approx(3) and granted < 6
    assert state.available == pytest.approx(0)


def test_returning_a_slice_reports_what_was_spent_and_frees_the_rest() -> None:
    state = LedgerState()
    first = ask(10, 40)
    settle_exchange(state, first)
    settle_exchange(state, ask(0, returning=first.lease_id, used=12.5))
    assert (state.reported, state.leased, state.available) == (12.5, 0, 87.5)


def test_an_expired_slice_counts_as_spent_until_its_instance_comes_back() -> None:
    state = LedgerState()
    gone = ask(10, 40, now=0)
    settle_exchange(state, gone)
    settle_exchange(state, ask(1, 1, now=TTL + 1))  # another instance, after the ttl
    assert state.reported == 40 and gone.lease_id in state.reclaimed
    settle_exchange(state, ask(0, returning=gone.lease_id, used=7, now=TTL + 2))
    assert state.reported == 7 and not state.reclaimed


def test_lago_usage_the_ledger_never_saw_counts_and_its_own_spend_is_not_counted_twice() -> None:
    state = LedgerState(baseline=10, reported=20)
    settle_exchange(state, Exchange(None, 0, "x", 0, 0, 100, 25, 0, TTL))  # Lago has our 20 + 5 more
    assert state.spent == 30
    settle_exchange(state, Exchange(None, 0, "y", 0, 0, 100, 45, 0, TTL))  # 15 spent elsewhere
    assert state.spent == 45


def test_the_document_round_trips() -> None:
    state = LedgerState(limit=100, baseline=1, reported=2, lago=3, leases={"a": (4, 5)}, reclaimed={"b": 6})
    assert LedgerState.from_dict(state.to_dict()) == state


# --- instances spending through leases (the store in memory: LocalLedgerStore) -----------


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=500),
    calls=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.1, 40), st.floats(0, 1), st.booleans()), min_size=1, max_size=80
    ),
)
def test_worst_cases_let_through_never_pass_the_limit_whatever_the_interleaving(
    limit: int, calls: list[tuple[int, float, float, bool]]
) -> None:
    store = LocalLedgerStore()
    clock = [0.0]
    instances = [SpendLeases(store, LeaseSettings(refusal_s=0), clock=lambda: clock[0]) for _ in range(4)]
    open_calls: list[tuple[int, str, float, float]] = []
    let_through = 0.0
    for which, worst, fraction, settle_one in calls:
        clock[0] += 0.1
        key = instances[which].reserve("payer", "p", worst, limit=limit)
        if key is not None:
            let_through += worst
            open_calls.append((which, key, worst, worst * fraction))
        if settle_one and open_calls:
            done = open_calls.pop(0)
            instances[done[0]].settle(done[1], done[2], done[3])
            let_through -= done[2] - done[3]  # what it really cost from now on
        assert let_through <= limit + 1e-6
    for which, key, worst, real in open_calls:
        instances[which].settle(key, worst, real)
        let_through -= worst - real
    for leases in instances:
        leases.stop()
    state = store.read(ledger_key("payer", "p"))
    assert state is not None
    assert state.leased == 0
    assert state.reported == pytest.approx(let_through)


def test_a_busy_instance_exchanges_its_slice_about_once_per_lease_period() -> None:
    store = LocalLedgerStore()
    clock = [0.0]
    leases = SpendLeases(store, LeaseSettings(lease_s=2.0), clock=lambda: clock[0])
    for _ in range(50 * 20):  # 50 requests per second for 20 s, each worst case 0.2, real 0.05
        clock[0] += 0.02
        key = leases.reserve("team", "p", 0.2, limit=1_000_000)
        assert key is not None
        leases.settle(key, 0.2, 0.05)
    assert store.writes <= 20 * 0.75, store.writes  # the target is 2 per second per payer


def test_a_call_that_fits_in_what_remains_is_not_refused_for_the_slice_it_asked() -> None:
    store = LocalLedgerStore()
    leases = SpendLeases(store, LeaseSettings(refusal_s=0))
    first = leases.reserve("p", "x", 6.0, limit=10.0)  # a slice of 6 (half of 10 is less)
    assert first is not None
    leases.settle(first, 6.0, 3.0)  # 3 of the slice unused; 7 of 10 are left
    assert leases.reserve("p", "x", 5.0, limit=10.0) is not None
    assert leases.reserve("p", "x", 2.5, limit=10.0) is None
