"""What Lago's answers mean for an event, and the send's retries, over httpx.MockTransport (no server)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from shared.billing_event import LagoEvent
from shared.lago_events import LagoEventsClient, Outcome, classify

EVENT: LagoEvent = {"transaction_id": "call-1", "external_subscription_id": "payer-1", "code": "llm_tokens"}


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (answer(200), Outcome.DELIVERED),
        (answer(422, {"error_details": {"transaction_id": ["value_already_exist"]}}), Outcome.DUPLICATE),
        (answer(422, {"error_details": {"code": ["invalid"]}}), Outcome.PERMANENT),
        (answer(429), Outcome.TRANSIENT),
        (answer(500), Outcome.TRANSIENT),
        (answer(503), Outcome.TRANSIENT),
        (answer(408), Outcome.TRANSIENT),
        (answer(401, {"error": "Unauthorized"}), Outcome.PERMANENT),
        (httpx.Response(502, text="<html>bad gateway</html>"), Outcome.TRANSIENT),
    ],
)
def test_each_lago_answer_is_classified(response: httpx.Response, outcome: Outcome) -> None:
    assert classify(response).outcome is outcome


def test_a_duplicate_counts_as_delivered_and_a_refusal_does_not() -> None:
    assert Outcome.DUPLICATE.delivered and Outcome.DELIVERED.delivered
    assert not Outcome.PERMANENT.delivered and not Outcome.TRANSIENT.delivered


def test_a_429_carries_lago_s_rate_limit_reset() -> None:
    assert classify(answer(429, headers={"X-RateLimit-Reset": "0.25"})).retry_after_s == 0.25
    assert classify(answer(429, headers={"X-RateLimit-Reset": "soon"})).retry_after_s is None


def client(handler: Callable[[httpx.Request], httpx.Response]) -> LagoEventsClient:
    return LagoEventsClient("http://lago.invalid", "key", transport=httpx.MockTransport(handler))


def test_send_retries_server_errors_until_lago_takes_the_event() -> None:
    answers = [answer(503), answer(500), answer(200)]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    delivery = client(handler).send(EVENT, time.monotonic() + 5)
    assert delivery.outcome is Outcome.DELIVERED
    assert len(seen) == 3
    assert all(r.url.path == "/api/v1/events" and r.headers["Authorization"] == "Bearer key" for r in seen)


def test_send_retries_connection_errors() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return answer(200)

    assert client(handler).send(EVENT, time.monotonic() + 5).outcome is Outcome.DELIVERED
    assert calls == 2


def test_send_does_not_retry_a_refusal() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return answer(400, {"code": "bad_event"})

    delivery = client(handler).send(EVENT, time.monotonic() + 5)
    assert delivery.outcome is Outcome.PERMANENT and delivery.status == 400
    assert calls == 1


def test_send_waits_the_rate_limit_reset_lago_names() -> None:
    answers = [answer(429, headers={"X-RateLimit-Reset": "0.3"}), answer(200)]
    started = time.monotonic()
    delivery = client(lambda request: answers.pop(0)).send(EVENT, started + 5)
    assert delivery.outcome is Outcome.DELIVERED
    assert time.monotonic() - started >= 0.3


def test_send_gives_up_at_the_deadline_with_a_transient_outcome() -> None:
    started = time.monotonic()
    delivery = client(lambda request: answer(503)).send(EVENT, started + 0.4)
    assert delivery.outcome is Outcome.TRANSIENT
    assert time.monotonic() - started < 0.4 + 1.0  # bounded: the deadline, plus slack for a loaded machine


def test_send_past_its_deadline_sends_nothing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request after the deadline")

    assert client(handler).send(EVENT, time.monotonic() - 1).outcome is Outcome.TRANSIENT
