"""Delivery of usage events to Lago's events API, bounded by a deadline.

One keep-alive ``httpx.Client`` per instance (a new connection per POST costs ~16 ms; a reused
one ~0.3 ms on loopback). Retries on connection errors, timeouts, 429 (honouring
``X-RateLimit-Reset``) and 5xx, never past the deadline; a 422 ``value_already_exist`` means
Lago already has the event.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result

from .billing_event import LagoEvent

_MIN_ATTEMPT_S = 0.05
_MAX_BACKOFF_S = 1.0


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

    def __init__(self, api_base: str, api_key: str, *, max_connections: int = 32) -> None:
        self._url = f"{api_base.rstrip('/')}/api/v1/events"
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def send(self, event: LagoEvent, deadline: float) -> Delivery:
        """Deliver one event, retrying transient failures until ``deadline`` (``time.monotonic()``)."""

        def attempt() -> Delivery:
            remaining = deadline - time.monotonic()
            if remaining < _MIN_ATTEMPT_S:
                return Delivery(Outcome.TRANSIENT, detail="deadline reached")
            try:
                response = self._client.post(self._url, json={"event": event}, timeout=remaining)
            except httpx.TransportError as error:
                return Delivery(Outcome.TRANSIENT, detail=type(error).__name__)
            return classify(response)

        retrying = Retrying(
            retry=retry_if_result(lambda delivery: delivery.outcome is Outcome.TRANSIENT),
            wait=_backoff,
            stop=lambda state: time.monotonic() + state.upcoming_sleep + _MIN_ATTEMPT_S > deadline,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            sleep=time.sleep,
        )
        return retrying(attempt)


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


def _backoff(state: RetryCallState) -> float:
    last = state.outcome.result() if state.outcome and not state.outcome.failed else None
    if isinstance(last, Delivery) and last.retry_after_s is not None:
        return last.retry_after_s
    base = min(_MAX_BACKOFF_S, 0.05 * 2 ** (state.attempt_number - 1))
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
