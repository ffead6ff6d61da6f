"""Delivery of usage events to Lago's events API, bounded by a deadline.

One keep-alive ``httpx.Client`` per instance (a new connection per POST costs ~16 ms; a reused
one ~0.3 ms on loopback). Retries on connection errors, timeouts, 429 (honouring
``X-RateLimit-Reset``) and 5xx, never past the deadline; a 422 ``value_already_exist`` means
Lago already has the event.

``send_batch`` posts up to 100 events to ``/api/v1/events/batch``, which Lago accepts or refuses
as a whole: a 422 maps the index of each refused event to its errors. Those whose only error
is ``value_already_exist`` are delivered already, others are refused for good, and the rest
of the batch was refused only for their company: it is sent again at once, without them.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result

from .billing_event import LagoEvent

_MIN_ATTEMPT_S = 0.05
_MAX_BACKOFF_S = 1.0
BATCH_LIMIT = 100  # Lago's maximum events per batch request


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"  # Lago had it already: as good as delivered
    TRANSIENT = "transient"  # worth retrying later (outbox)
    PERMANENT = "permanent"  # Lago refuses it; retrying will not help

    @property
    def delivered(self) -> bool:
        return self in (Outcome.DELIVERED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    status: int | None = None
    detail: str = ""
    retry_after_s: float | None = None


class LagoEventsClient:
    """Sends events; safe to share between threads. ``close()`` when the instance ends."""

    def __init__(
        self, api_base: str, api_key: str, *, max_connections: int = 32, transport: httpx.BaseTransport | None = None
    ) -> None:
        """``transport`` replaces the network (the unit tests' ``httpx.MockTransport``)."""
        self._url = f"{api_base.rstrip('/')}/api/v1/events"
        self._batch_url = f"{self._url}/batch"
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def send(self, event: LagoEvent, deadline: float) -> Delivery:
        """Deliver one event, retrying transient failures until ``deadline`` (``time.monotonic()``)."""

        def attempt() -> Delivery:
            answer = self._post(self._url, {"event": event}, deadline)
            return (
                classify(answer) if isinstance(answer, httpx.Response) else Delivery(Outcome.TRANSIENT, detail=answer)
            )

        return _retrying(deadline)(attempt)

    def send_batch(self, events: Sequence[LagoEvent], deadline: float) -> list[Delivery]:
        """Deliver up to ``BATCH_LIMIT`` events; one ``Delivery`` per event, in order.

        Transient failures of the whole batch are retried until ``deadline``. A 400 (the batch
        as a whole does not parse) falls back to one request per event, to find the bad one.
        """
        if len(events) > BATCH_LIMIT:
            raise ValueError(f"Lago takes at most {BATCH_LIMIT} events per batch")
        results: dict[int, Delivery] = {}
        todo = list(range(len(events)))
        while todo:
            body = {"events": [events[i] for i in todo]}

            def attempt(body: dict[str, Any] = body) -> BatchAnswer:
                answer = self._post(self._batch_url, body, deadline)
                if isinstance(answer, httpx.Response):
                    return classify_batch(answer)
                return BatchAnswer(Delivery(Outcome.TRANSIENT, detail=answer))

            answer = _retrying(deadline)(attempt)
            if answer.per_event is None:
                if answer.status in (400, 422):  # the batch as a whole is refused: find the bad event
                    results.update({i: self.send(events[i], deadline) for i in todo})
                else:
                    results.update({i: answer.whole for i in todo})
                break
            settled = {todo[int(k)]: d for k, d in answer.per_event.items() if k.isdigit() and int(k) < len(todo)}
            results.update(settled)
            if not settled:  # a 422 that names no event of ours: not something a resend fixes
                results.update({i: Delivery(Outcome.PERMANENT, 422, answer.whole.detail) for i in todo})
                break
            todo = [i for i in todo if i not in settled]
        return [results[i] for i in range(len(events))]

    def _post(self, url: str, body: dict[str, Any], deadline: float) -> httpx.Response | str:
        """One attempt: Lago's response, or why there is none (transient either way)."""
        remaining = deadline - time.monotonic()
        if remaining < _MIN_ATTEMPT_S:
            return "deadline reached"
        try:
            return self._client.post(url, json=body, timeout=remaining)
        except httpx.TransportError as error:
            return type(error).__name__


@dataclass(frozen=True)
class BatchAnswer:
    """Lago's answer to a batch: ``whole`` for every event, unless a 422 judged them one by one
    (``per_event``: index, as Lago writes it, to that event's outcome; the others were not taken)."""

    whole: Delivery
    per_event: dict[str, Delivery] | None = None

    @property
    def outcome(self) -> Outcome:
        return self.whole.outcome

    @property
    def status(self) -> int | None:
        return self.whole.status


def _retrying(deadline: float) -> Retrying:
    return Retrying(
        retry=retry_if_result(lambda answer: answer.outcome is Outcome.TRANSIENT),
        wait=_backoff,
        stop=lambda state: time.monotonic() + state.upcoming_sleep + _MIN_ATTEMPT_S > deadline,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=time.sleep,
    )


def classify(response: httpx.Response) -> Delivery:
    """What Lago's answer means for this event."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivery(Outcome.DELIVERED, status)
    body = _json(response)
    if status == 422 and _is_duplicate(body):
        return Delivery(Outcome.DUPLICATE, status)
    if status == 429:
        return Delivery(Outcome.TRANSIENT, status, "rate limited", _reset_seconds(response))
    if status >= 500 or status == 408:
        return Delivery(Outcome.TRANSIENT, status, str(body.get("error") or "server error")[:200])
    detail = {key: body.get(key) for key in ("code", "error", "error_details") if key in body}
    return Delivery(Outcome.PERMANENT, status, str(detail)[:500])


def classify_batch(response: httpx.Response) -> BatchAnswer:
    """What Lago's answer means for each event of a batch."""
    status = response.status_code
    if status in (401, 403):  # our API key, not the events: keep them for a later run
        return BatchAnswer(Delivery(Outcome.TRANSIENT, status, "Lago refused the API key"))
    body = _json(response)
    details = body.get("error_details")
    if status != 422 or not isinstance(details, dict) or not any(str(k).isdigit() for k in details):
        return BatchAnswer(classify(response))
    per_event = {
        str(index): Delivery(Outcome.DUPLICATE, 422)
        if _only_already_exists(errors)
        else Delivery(Outcome.PERMANENT, 422, str(errors)[:500])
        for index, errors in details.items()
        if str(index).isdigit()
    }
    return BatchAnswer(Delivery(Outcome.PERMANENT, 422, str(details)[:200]), per_event)


def _only_already_exists(errors: Any) -> bool:
    return isinstance(errors, dict) and errors.get("transaction_id") == ["value_already_exist"] and len(errors) == 1


def _backoff(state: RetryCallState) -> float:
    last: object = state.outcome.result() if state.outcome and not state.outcome.failed else None
    if isinstance(last, BatchAnswer):
        last = last.whole
    if isinstance(last, Delivery) and last.retry_after_s is not None:
        return last.retry_after_s
    base = min(_MAX_BACKOFF_S, 0.05 * 2.0 ** (state.attempt_number - 1))
    return base * (0.5 + random.random() / 2)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_duplicate(body: dict[str, Any]) -> bool:
    details = body.get("error_details")
    if not isinstance(details, dict):
        return False
    return "value_already_exist" in (details.get("transaction_id") or [])


def _reset_seconds(response: httpx.Response) -> float | None:
    raw = response.headers.get("X-RateLimit-Reset")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None
