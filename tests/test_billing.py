"""Exactly-once Lago billing that is finished before the response: through the real server."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.cloud import firestore
from httpx_sse import connect_sse

from standins.lago import FakeLago
from standins.processes import FunctionServer
from tests.conftest import DEFAULT_MODEL, EVENT_CODE, PROJECT_ID, User
from tests.support.api import CHAT, ask, chat, stream_body
from tests.support.outbox_seed import seed_outbox

BILL_ME = "bill me please"  # the token counts asserted below are this prompt's


@pytest.fixture
def outbox(firestore_client: firestore.Client, firestore_emulator) -> Callable[[str], list[dict[str, Any]]]:
    """The outbox documents of one payer (uid); the outbox starts empty for each test."""
    firestore_emulator.clear(PROJECT_ID)

    def documents(payer: str) -> list[dict[str, Any]]:
        docs = firestore_client.collection("billing_outbox").stream()
        found = [{"id": d.id, **(d.to_dict() or {})} for d in docs]
        return [d for d in found if d["event"]["external_subscription_id"] == payer]

    return documents


@pytest.fixture(scope="module")
def replay_server(function_server) -> FunctionServer:
    return function_server(target="replay_billing")


def replay(server: FunctionServer) -> dict[str, int]:
    response = httpx.post(server.url + "/", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


# --- one event per call, in Lago before the last byte -----------------------------------------


def test_json_call_is_billed_once_before_the_response(chat_server: FunctionServer, fake_lago: FakeLago, user: User):
    response = chat(chat_server, user, ask("one two three"))
    received_at = time.monotonic()
    assert response.status_code == 200
    events = fake_lago.events(user.uid)
    assert len(events) == 1, "the event must be in Lago when the client has the response"
    assert fake_lago.arrivals(user.uid)[0].arrived_at <= received_at
    event = events[0]
    assert event["transaction_id"] == response.json()["id"]
    assert event["external_subscription_id"] == user.uid
    assert event["code"] == EVENT_CODE
    assert float(event["timestamp"]) == pytest.approx(time.time(), abs=30)
    props = event["properties"]
    assert (props["prompt_tokens"], props["completion_tokens"], props["total_tokens"]) == (6, 5, 11)
    assert props["model"] == DEFAULT_MODEL
    assert props["response_cost"] > 0
    assert "partial" not in props


def test_stream_is_billed_once_before_done(chat_server: FunctionServer, fake_lago: FakeLago, user: User) -> None:
    seen_at_done: list[dict[str, Any]] | None = None
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", chat_server.url + CHAT, json=stream_body("a b c", include_usage=False), headers=user.headers
        ) as source,
    ):
        for sse in source.iter_sse():
            if sse.data == "[DONE]":
                seen_at_done = fake_lago.events(user.uid)
            else:
                call_id = json.loads(sse.data)["id"]
    assert seen_at_done is not None and len(seen_at_done) == 1
    event = seen_at_done[0]
    assert event["transaction_id"] == call_id
    assert event["properties"]["completion_tokens"] == 5
    assert event["properties"]["prompt_tokens"] == 6
    assert "partial" not in event["properties"]


def test_each_request_bills_its_own_user(chat_server: FunctionServer, fake_lago: FakeLago, new_user) -> None:
    alice, bob = new_user(), new_user()
    chat(chat_server, alice, ask(BILL_ME))
    chat(chat_server, bob, {**ask(BILL_ME), "user": alice.uid})
    assert len(fake_lago.events(alice.uid)) == 1
    assert len(fake_lago.events(bob.uid)) == 1


def test_failed_llm_call_bills_nothing_and_is_logged(chat_server: FunctionServer, fake_lago: FakeLago, user: User):
    response = chat(chat_server, user, ask("#status:500"))
    assert response.status_code == 502
    assert fake_lago.events(user.uid) == []
    digest = hashlib.sha256(user.uid.encode()).hexdigest()[:16]
    failed = [line for line in chat_server.log_lines() if line.get("uid_hash") == digest]
    assert [(line["message"], line["model"], line["error_class"]) for line in failed] == [
        ("llm_call_failed", DEFAULT_MODEL, "InternalServerError")
    ]
    assert user.uid not in chat_server.logs()


def test_model_missing_from_cost_map_is_billed_by_tokens_and_logged_once(
    chat_server: FunctionServer, fake_lago: FakeLago, user: User
) -> None:
    for _ in range(2):
        assert chat(chat_server, user, {**ask(BILL_ME), "model": "openai/not-in-cost-map"}).status_code == 200
    events = fake_lago.events(user.uid)
    assert len(events) == 2
    assert all("response_cost" not in e["properties"] and e["properties"]["total_tokens"] == 11 for e in events)
    unknown = [line for line in chat_server.log_lines() if line["message"] == "model_cost_unknown"]
    assert len([line for line in unknown if line["model"] == "openai/not-in-cost-map"]) == 1


def test_billed_from_the_response_when_litellm_drops_its_callback(function_server, fake_lago, user: User) -> None:
    # LiteLLM drops logging tasks when its executor's queue is full; a cap of 0 drops them all.
    server = function_server(LOGGING_EXECUTOR_MAX_PENDING_TASKS="0")
    response = chat(server, user, ask("one two three"))
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", server.url + CHAT, json=stream_body(BILL_ME), headers=user.headers) as source,
    ):
        list(source.iter_sse())
    events = fake_lago.events(user.uid)
    assert len(events) == 2
    assert events[0]["transaction_id"] == response.json()["id"]
    assert events[0]["properties"]["total_tokens"] == 11 and events[0]["properties"]["response_cost"] > 0


# --- the freeze: CPU stops the moment the client has its answer -------------------------------


@pytest.fixture
def freezable_server(function_server) -> Iterator[FunctionServer]:
    server = function_server()
    yield server
    server.signal(signal.SIGCONT)
    server.stop()


def test_event_is_in_lago_when_the_instance_freezes(freezable_server: FunctionServer, fake_lago, user: User) -> None:
    ids = []
    for round_, body in enumerate([ask(BILL_ME), stream_body(BILL_ME)] * 3, start=1):
        with httpx.Client(timeout=30) as client:
            response = client.post(freezable_server.url + CHAT, json=body, headers=user.headers)
            freezable_server.signal(signal.SIGSTOP)  # the instance's CPU stops with the response
            try:
                assert response.status_code == 200
                billed = [e["transaction_id"] for e in fake_lago.events(user.uid)]
            finally:
                freezable_server.signal(signal.SIGCONT)
        ids.append(response.text.split('"id":', 1)[1].split('"')[1])
        assert billed == ids, f"round {round_}: every call billed once before the freeze"


# --- abandoned and broken streams are billed as partial ---------------------------------------


def test_client_abandoning_a_stream_gets_one_partial_event(chat_server, fake_lago: FakeLago, user: User) -> None:
    body = stream_body("#words:60 #gap:40")
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", chat_server.url + CHAT, json=body, headers=user.headers) as response,
    ):
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]  # three data events and their blank lines
    call_id = json.loads(received[0].removeprefix("data: "))["id"]
    events = fake_lago.wait_for_events(user.uid, 1)
    assert [e["transaction_id"] for e in events] == [call_id]
    props = events[0]["properties"]
    assert props["partial"] == "true"
    assert 0 < props["completion_tokens"] < 60
    assert props["prompt_tokens"] > 0


def test_stream_failing_midway_is_billed_as_partial(chat_server, fake_lago: FakeLago, user: User) -> None:
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", chat_server.url + CHAT, json=stream_body("#cut:3 #words:10"), headers=user.headers
        ) as source,
    ):
        data = [sse.data for sse in source.iter_sse()]
        events_at_error = fake_lago.events(user.uid)
    assert "error" in json.loads(data[-1])
    assert len(events_at_error) == 1
    assert events_at_error[0]["properties"]["partial"] == "true"
    assert events_at_error[0]["properties"]["completion_tokens"] >= 3


# --- Lago faults: nothing lost, nothing twice, bounded time -----------------------------------


@pytest.mark.parametrize("plan", [("500", "503"), ("429:0.2",), ("reset",), ("slow:0.3",)])
def test_transient_lago_faults_are_retried_within_the_deadline(chat_server, fake_lago, user: User, plan) -> None:
    fake_lago.plan(*plan)
    started = time.monotonic()
    response = chat(chat_server, user, ask(BILL_ME))
    assert response.status_code == 200
    assert time.monotonic() - started < 1.5 + 1.0
    events = fake_lago.events(user.uid)
    assert [e["transaction_id"] for e in events] == [response.json()["id"]]


def test_lago_hanging_past_the_deadline_defers_to_the_outbox(chat_server, fake_lago, user: User, outbox) -> None:
    fake_lago.plan("hang:3")
    started = time.monotonic()
    response = chat(chat_server, user, ask(BILL_ME))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1.5 + 5.5, "bounded by the billing deadline plus the outbox write"
    docs = outbox(user.uid)
    assert [d["id"] for d in docs] == [response.json()["id"]]
    assert docs[0]["status"] == "pending"


def test_lago_down_keeps_chat_working_and_replay_delivers_once(
    chat_server, replay_server, fake_lago: FakeLago, user: User, outbox
) -> None:
    fake_lago.stop()
    try:
        responses = [chat(chat_server, user, ask(BILL_ME)) for _ in range(3)]
        with (
            httpx.Client(timeout=30) as client,
            connect_sse(
                client, "POST", chat_server.url + CHAT, json=stream_body(BILL_ME), headers=user.headers
            ) as source,
        ):
            stream_id = json.loads(list(source.iter_sse())[0].data)["id"]
    finally:
        fake_lago.server.start()
    assert all(r.status_code == 200 for r in responses)
    ids = {r.json()["id"] for r in responses} | {stream_id}
    stored = {d["id"]: d["event"] for d in outbox(user.uid)}
    assert set(stored) == ids
    assert fake_lago.events(user.uid) == []

    report = replay(replay_server)
    assert report["delivered"] >= 4
    delivered = fake_lago.events(user.uid)
    assert sorted(e["transaction_id"] for e in delivered) == sorted(ids)
    for event in delivered:
        assert event["timestamp"] == stored[event["transaction_id"]]["timestamp"]
        assert event == stored[event["transaction_id"]]
    assert outbox(user.uid) == []
    replay(replay_server)
    assert len(fake_lago.events(user.uid)) == 4


def test_replay_with_a_slow_lago_drains_the_outbox_and_answers_200(
    replay_server, fake_lago: FakeLago, firestore_client: firestore.Client, user: User, outbox
) -> None:
    """Seen: 40 events and Lago at 0.4 s a request ended the run in a 500 after 5.3 s, 27 left."""
    ids = seed_outbox(firestore_client, user.uid, 40)
    fake_lago.delay_for(user.uid, 0.4)
    report = replay(replay_server)
    assert (report["delivered"], report["remaining"]) == (40, 0)
    assert report["requests"] == 1, "one batch request for the 40"
    assert sorted(e["transaction_id"] for e in fake_lago.events(user.uid)) == sorted(ids)
    assert outbox(user.uid) == []


def test_replay_of_an_event_lago_already_has_counts_as_delivered(
    chat_server, replay_server, fake_lago: FakeLago, user: User, outbox
) -> None:
    fake_lago.plan("hang:2.5")  # Lago stores it after the function gave up on it
    response = chat(chat_server, user, ask(BILL_ME))
    assert [d["id"] for d in outbox(user.uid)] == [response.json()["id"]]
    fake_lago.wait_for_events(user.uid, 1)
    before = fake_lago.duplicates
    replay(replay_server)
    assert fake_lago.duplicates == before + 1
    assert len(fake_lago.events(user.uid)) == 1
    assert outbox(user.uid) == []


def test_event_lago_refuses_stays_visible_as_failed(chat_server, replay_server, fake_lago, user: User, outbox) -> None:
    fake_lago.plan("400")
    response = chat(chat_server, user, ask(BILL_ME))
    assert response.status_code == 200
    docs = outbox(user.uid)
    assert [(d["id"], d["status"]) for d in docs] == [(response.json()["id"], "failed")]
    refused = [line for line in chat_server.log_lines() if line["message"] == "billing_event_refused"]
    assert refused and refused[-1]["status"] == 400
    replay(replay_server)
    assert [d["status"] for d in outbox(user.uid)] == ["failed"]
    assert fake_lago.events(user.uid) == []


# --- concurrency ----------------------------------------------------------------------------


def test_slow_lago_for_one_request_does_not_delay_the_others(function_server, fake_lago, new_user) -> None:
    server = function_server(LAGO_FLUSH_TIMEOUT_S="20")
    slow, others = new_user(), [new_user() for _ in range(19)]
    arrived, release = fake_lago.hold(slow.uid)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        slow_response = pool.submit(chat, server, slow, ask(BILL_ME))
        assert arrived.wait(10), "the slow request's event reached Lago and is held there"
        # Lago still holds the slow request's event: the others must finish regardless.
        other_responses = list(pool.map(lambda u: chat(server, u, ask(BILL_ME), timeout=15), others))
        assert not slow_response.done()
        release.set()
        assert slow_response.result().status_code == 200
    assert all(r.status_code == 200 for r in other_responses)
    assert all(len(fake_lago.events(u.uid)) == 1 for u in [slow, *others])


def test_callback_registered_once_with_concurrent_first_requests(function_server, fake_lago, new_user) -> None:
    server = function_server()
    users = [new_user() for _ in range(10)]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda u: chat(server, u, ask(BILL_ME)), users))
    assert all(r.status_code == 200 for r in responses)
    assert [line["message"] for line in server.log_lines()].count("lago_logging_enabled") == 1
    for u, r in zip(users, responses, strict=True):
        assert [e["transaction_id"] for e in fake_lago.events(u.uid)] == [r.json()["id"]]


def test_deployed_instance_opted_out_of_required_billing_says_so_loudly(function_server) -> None:
    server = function_server(
        LAGO_API_KEY=None,
        K_SERVICE="chat",
        CHAT_REQUIRE_BILLING="false",
        SECRETS="",  # nothing to read from Secret Manager
        FIREBASE_AUTH_EMULATOR_HOST=None,  # refused on a deployed instance
        FIRESTORE_EMULATOR_HOST=None,
    )
    warnings = [line for line in server.log_lines() if line["severity"] == "WARNING"]
    assert {"severity": "WARNING", "message": "lago_logging_disabled", "missing": ["LAGO_API_KEY"]} in warnings
    assert [line["message"] for line in warnings].count("billing_not_required") == 1


def test_team_billing_charges_the_team_claim_of_the_token(function_server, fake_lago, auth_emulator, new_user) -> None:
    server = function_server(LAGO_API_CHARGE_BY="team_id")
    member, loner = new_user(), new_user()
    auth_emulator.admin(
        "POST", "accounts:update", {"localId": member.uid, "customAttributes": '{"team_id": "team-42"}'}
    )
    member.token = auth_emulator.sign_in(member.email)
    response = chat(server, member, {**ask(BILL_ME), "user": "team-other"})
    assert response.status_code == 200
    assert [e["transaction_id"] for e in fake_lago.events("team-42")] == [response.json()["id"]]
    refused = chat(server, loner, ask(BILL_ME))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert fake_lago.events(loner.uid) == []


def test_replay_backs_off_per_event_while_lago_stays_down(chat_server, replay_server, fake_lago, user, outbox) -> None:
    fake_lago.stop()
    try:
        response = chat(chat_server, user, ask(BILL_ME))
        first = replay(replay_server)
        second = replay(replay_server)  # right away: the event is not due again yet
    finally:
        fake_lago.server.start()
    assert first["retry_later"] >= 1
    docs = outbox(user.uid)
    assert [d["id"] for d in docs] == [response.json()["id"]]
    assert docs[0]["attempts"] == 1, second
    assert docs[0]["next_attempt_at"].timestamp() > time.time() + 10


def test_chat_refuses_unbilled_service_when_billing_is_required(function_server, fake_lago, user) -> None:
    server = function_server(LAGO_API_KEY=None, CHAT_REQUIRE_BILLING="true")
    response = chat(server, user, ask(BILL_ME))
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "Chat is unavailable: billing is not working on this instance."
