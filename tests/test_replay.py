"""The outbox's replay in this process, against the Lago stand-in and gcloud's Firestore emulator:
Lago's batch endpoint and its all-or-nothing answers, the claim (lease) two runs cannot both
take, a run that drains page after page, and one that stops early and says what is left.
Each test has a Firestore project of its own, so its counts are exactly its own events."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.cloud import firestore

from shared.firestore_db import FirestoreDb
from shared.lago_events import LagoEventsClient, Outcome
from shared.outbox import Outbox
from shared.replay import ReplayRun
from standins.lago import API_KEY, FakeLago
from tests.support.outbox_seed import queued_event, seed_outbox


@pytest.fixture
def project(firestore_emulator_env: None) -> str:
    return f"demo-replay-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db(project: str) -> Iterator[firestore.Client]:
    client = firestore.Client(project=project)
    yield client
    client.close()


@pytest.fixture
def lago(fake_lago: FakeLago) -> Iterator[LagoEventsClient]:
    client = LagoEventsClient(fake_lago.url, API_KEY)
    yield client
    client.close()


def payer() -> str:
    return f"payer-{uuid.uuid4().hex[:10]}"


def documents(db: firestore.Client) -> dict[str, dict[str, object]]:
    return {d.id: d.to_dict() or {} for d in db.collection("billing_outbox").stream()}


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


# --- Lago's batch endpoint ------------------------------------------------------------------


def test_batch_of_100_events_is_one_request(fake_lago: FakeLago, lago: LagoEventsClient) -> None:
    who, before = payer(), fake_lago.batch_requests
    deliveries = lago.send_batch([queued_event(who) for _ in range(100)], soon())
    assert [d.outcome for d in deliveries] == [Outcome.DELIVERED] * 100
    assert fake_lago.batch_requests == before + 1
    assert len(fake_lago.events(who)) == 100


def test_batch_refused_for_events_lago_has_counts_those_delivered_and_resends_the_rest(
    fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    who = payer()
    events = [queued_event(who) for _ in range(10)]
    for index in (2, 7):
        assert lago.send(events[index], soon()).outcome is Outcome.DELIVERED
    before = fake_lago.batch_requests
    deliveries = lago.send_batch(events, soon())
    assert [d.outcome for d in deliveries] == [
        Outcome.DUPLICATE if i in (2, 7) else Outcome.DELIVERED for i in range(10)
    ]
    assert fake_lago.batch_requests == before + 2, "one refused whole, one resend without the two"
    assert sorted(e["transaction_id"] for e in fake_lago.events(who)) == sorted(e["transaction_id"] for e in events)


def test_batch_with_a_malformed_event_refuses_only_that_event(fake_lago: FakeLago, lago: LagoEventsClient) -> None:
    who = payer()
    events = [queued_event(who) for _ in range(5)]
    events[3]["properties"] = {"model": ["not", "a", "string"]}  # Lago takes strings and numbers only
    deliveries = lago.send_batch(events, soon())
    assert [d.outcome for d in deliveries] == [Outcome.DELIVERED] * 3 + [Outcome.PERMANENT, Outcome.DELIVERED]
    assert deliveries[3].status == 400
    assert len(fake_lago.events(who)) == 4


def test_batch_waits_out_the_rate_limit_reset_lago_names(fake_lago: FakeLago, lago: LagoEventsClient) -> None:
    who = payer()
    fake_lago.plan("429:0.4", "503")
    started = time.monotonic()
    deliveries = lago.send_batch([queued_event(who) for _ in range(3)], soon())
    assert [d.outcome for d in deliveries] == [Outcome.DELIVERED] * 3
    assert time.monotonic() - started >= 0.4
    assert len(fake_lago.events(who)) == 3


def test_batch_of_more_than_lago_takes_is_refused_before_sending(lago: LagoEventsClient) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        lago.send_batch([queued_event(payer()) for _ in range(101)], soon())


# --- claims --------------------------------------------------------------------------------


def test_a_claimed_document_cannot_be_claimed_by_another_run(db: firestore.Client, project: str) -> None:
    seed_outbox(db, payer(), 3)
    outbox = Outbox(FirestoreDb(project))
    due = outbox.read_due(10)
    lease = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    first = outbox.claim(due, "run-a", lease)
    second = outbox.claim(due, "run-b", lease)  # read the same page before the first claimed it
    assert len(first) == 3 and second == []
    assert {d["leased_by"] for d in documents(db).values()} == {"run-a"}
    assert outbox.read_due(10) == [], "leased documents are not due"


def test_settling_a_document_another_run_already_deleted_skips_it(db: firestore.Client, project: str) -> None:
    ids = seed_outbox(db, payer(), 3)
    outbox = Outbox(FirestoreDb(project))
    claimed = outbox.claim(outbox.read_due(10), "run-a", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    db.collection("billing_outbox").document(ids[0]).delete()
    by_id = {c.doc_id: c for c in claimed}
    outbox.settle(retry=[(by_id[i], "503") for i in ids])
    left = documents(db)
    assert sorted(left) == sorted(ids[1:]), "the gone document is not written back"
    assert all(d["attempts"] == 1 and "leased_by" not in d for d in left.values())


# --- runs ----------------------------------------------------------------------------------


def test_run_drains_page_after_page_in_batches(
    db: firestore.Client, project: str, fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    who = payer()
    ids = seed_outbox(db, who, 650)
    before = fake_lago.batch_requests
    report = ReplayRun(Outbox(FirestoreDb(project)), lago, page_size=300, budget_s=50).run()
    assert (report.delivered, report.remaining, report.retry_later, report.failed) == (650, 0, 0, 0)
    assert sorted(e["transaction_id"] for e in fake_lago.events(who)) == sorted(ids)
    assert report.requests == fake_lago.batch_requests - before == 7  # pages of 300, 300 and 50
    assert documents(db) == {}


def test_run_that_runs_out_of_time_says_how_many_are_left_and_hands_them_back(
    db: firestore.Client, project: str, fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    who = payer()
    seed_outbox(db, who, 1_000)
    fake_lago.delay_for(who, 0.6)  # each batch request takes 0.6 s
    report = ReplayRun(Outbox(FirestoreDb(project)), lago, page_size=200, budget_s=1.0).run()
    assert report.released > 0 and report.retry_later == 0
    assert report.remaining == 1_000 - report.delivered > 0
    left = documents(db)
    assert len(left) == report.remaining
    assert not any("leased_by" in d or d["attempts"] for d in left.values()), "handed back as they were"
    due = Outbox(FirestoreDb(project)).read_due(1_000)
    assert len(due) == report.remaining, "what the run did not send is due again at once"


def test_lago_down_ends_the_run_early_and_its_events_back_off(
    db: firestore.Client, project: str, fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    seed_outbox(db, payer(), 300)
    fake_lago.stop()
    try:
        report = ReplayRun(Outbox(FirestoreDb(project)), lago, page_size=100, budget_s=50).run()
    finally:
        fake_lago.server.start()
    assert report.seconds < 15, "a few seconds of retries, not the whole budget"
    assert report.delivered == 0 and report.remaining == 300
    backing_off = [d for d in documents(db).values() if d["attempts"] == 1]
    assert len(backing_off) == report.retry_later >= 100
    assert all(d["next_attempt_at"] > dt.datetime.now(dt.UTC) for d in backing_off)


def test_run_keeps_to_lagos_rate_limit_and_loses_nothing(
    db: firestore.Client, project: str, fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    who = payer()
    ids = seed_outbox(db, who, 600)
    fake_lago.rate_limit(3)  # per second: the run's pace is above it, so Lago answers 429s
    duplicates = fake_lago.duplicates
    report = ReplayRun(Outbox(FirestoreDb(project)), lago, page_size=500, budget_s=50).run()
    assert fake_lago.rate_limited > 0
    assert (report.delivered, report.remaining) == (600, 0)
    assert sorted(e["transaction_id"] for e in fake_lago.events(who)) == sorted(ids)
    assert fake_lago.duplicates == duplicates


def test_two_runs_at_once_send_each_event_once(
    db: firestore.Client, project: str, fake_lago: FakeLago, lago: LagoEventsClient
) -> None:
    who = payer()
    ids = seed_outbox(db, who, 1_200)
    submitted, duplicates = len(fake_lago.submitted), fake_lago.duplicates
    start = threading.Barrier(2)
    reports = []

    def run() -> None:
        outbox = Outbox(FirestoreDb(project))  # a Firestore client of its own, as another instance has
        start.wait()
        reports.append(ReplayRun(outbox, lago, page_size=200, budget_s=50).run())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r.delivered for r in reports) == 1_200
    assert sorted(e["transaction_id"] for e in fake_lago.events(who)) == sorted(ids)
    assert len(fake_lago.submitted) - submitted == 1_200, "no event was sent twice"
    assert fake_lago.duplicates == duplicates
