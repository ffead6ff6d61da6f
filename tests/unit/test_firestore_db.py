"""The instance's one Firestore client: made once, on first use, whoever asks first."""

from __future__ import annotations

import threading

import pytest

from shared.firestore_db import FirestoreDb
from shared.ledger import LedgerStore
from shared.outbox import Outbox
from shared.rate_limits import RateStore


@pytest.fixture(autouse=True)
def _emulator_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client for the emulator needs no credentials; none of these tests sends a request.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")


def test_client_is_made_once_however_many_threads_ask_at_once() -> None:
    db = FirestoreDb("demo-unit")
    start = threading.Barrier(8)
    clients: list[object] = []

    def ask() -> None:
        start.wait()
        clients.append(db.client())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 8 and len({id(client) for client in clients}) == 1


def test_outbox_ledger_and_rate_limits_use_the_one_client_they_are_given() -> None:
    db = FirestoreDb("demo-unit")
    outbox, ledger, rates = Outbox(db), LedgerStore(db), RateStore(db)
    assert outbox._firestore() is ledger._db() is rates._db() is db.client()
    assert db.client().project == "demo-unit"
