"""The spend ledger's leases across instances sharing the Firestore emulator (its arithmetic, and
instances sharing the in-memory store, are unit tests: tests/unit/test_ledger.py)."""

from __future__ import annotations

import concurrent.futures
import random
import threading
import uuid

import pytest

from shared.firestore_db import FirestoreDb
from shared.ledger import LedgerStore, SpendLeases, ledger_key
from tests.conftest import PROJECT_ID


def test_instances_sharing_firestore_never_let_more_than_the_limit_through(firestore_emulator_env: None) -> None:
    payer, period, limit = f"team-{uuid.uuid4().hex}", "2026-11-01T00:00:00Z", 15.0
    # The emulator serializes contended transactions behind lock waits of seconds (an exchange
    # took up to 16 s here under load), far past Firestore's: the per-call deadline is the emulator's.
    stores = [LedgerStore(FirestoreDb(PROJECT_ID), timeout_s=30) for _ in range(3)]
    instances = [SpendLeases(store) for store in stores]
    let_through: list[tuple[float, float]] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        rng = random.Random(n)
        leases = instances[n % 3]
        worst = rng.uniform(0.5, 3.0)
        key = leases.reserve(payer, period, worst, limit=limit)
        if key is None:
            return
        real = worst * rng.uniform(0.2, 1.0)
        with lock:
            let_through.append((worst, real))
        leases.settle(key, worst, real)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(call, range(24)))
    for leases in instances:
        leases.stop()
    state = stores[0].read(ledger_key(payer, period))
    assert state is not None
    seen = f"{len(let_through)} of 24 let through, {sum(r for _, r in let_through):.2f} spent; ledger {state}"
    assert sum(real for _, real in let_through) <= limit, seen
    assert state.leased == 0, f"every slice came back: {seen}"
    assert state.reported == pytest.approx(sum(real for _, real in let_through)), seen
    assert state.reported > limit * 0.6, f"the budget was not left mostly unused: {seen}"
