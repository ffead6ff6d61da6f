"""A Lago stand-in for the events API, answering as Lago does.

- ``POST /api/v1/events``: Bearer auth (401), the body checked against Lago's ``EventInput``
  schema (OpenAPI 1.51.0; 400 when it does not match), 200 with the stored event, and 422
  ``value_already_exist`` for a transaction id already stored for that subscription
  (Lago's Postgres event store).
- Faults, planned per test: ``plan(500, 500)`` answers the next requests with those statuses;
  ``plan("429:2")`` with ``X-RateLimit-Reset: 2``; ``plan("hang:5")`` waits 5 s then stores
  the event (the client has long given up); ``plan("reset")`` drops the connection;
  ``plan("slow:0.5")`` waits then answers normally; ``delay_for(subscription, seconds)`` slows
  every event of one subscription; ``hold(subscription)`` keeps them until released. ``stop()`` / ``start()`` make the port refuse connections.
- Every accepted event is recorded with its arrival time (``time.monotonic()`` of this process);
  ``submitted`` keeps every well-formed event posted, refused resends included.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jsonschema

from .http_server import Request, StandInServer

API_KEY = "lago-test-key-do-not-log"

# Lago OpenAPI 1.51.0, components.schemas.EventInput / EventInputObject. The spec says
# ``oneOf`` for property values, but an integer matches both "integer" and "number" there, and
# Lago accepts integers: ``anyOf`` is what the server does.
EVENT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "event": {
            "type": "object",
            "required": ["transaction_id", "external_subscription_id", "code"],
            "properties": {
                "transaction_id": {"type": "string"},
                "external_subscription_id": {"type": "string"},
                "code": {"type": "string"},
                "timestamp": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "precise_total_amount_cents": {"type": ["string", "null"]},
                "properties": {
                    "type": ["object", "null"],
                    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}]},
                },
            },
        }
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(EVENT_INPUT_SCHEMA)


@dataclass(frozen=True)
class Received:
    event: dict[str, Any]
    arrived_at: float


class FakeLago:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._keys: set[tuple[str, str]] = set()
        self.requests = 0
        self.duplicates = 0
        self.submitted: list[dict[str, Any]] = []  # every well-formed event posted, resends included
        self._plan: list[str] = []
        self._delays: dict[str, float] = {}
        self._holds: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._arrived = threading.Condition(self._lock)
        self.server = StandInServer([("POST", r"/api/v1/events", self._create_event)])

    def start(self) -> FakeLago:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    # --- test controls -------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._plan.clear()
            self._delays.clear()
            for _, release in self._holds.values():
                release.set()
            self._holds.clear()

    def plan(self, *steps: int | str) -> None:
        with self._lock:
            self._plan.extend(str(step) for step in steps)

    def delay_for(self, subscription_id: str, seconds: float) -> None:
        with self._lock:
            self._delays[subscription_id] = seconds

    def hold(self, subscription_id: str) -> tuple[threading.Event, threading.Event]:
        """Hold that subscription's events until released: ``(arrived, release)``."""
        arrived, release = threading.Event(), threading.Event()
        with self._lock:
            self._holds[subscription_id] = (arrived, release)
        return arrived, release

    def events(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received if subscription_id in (None, r.event["external_subscription_id"])]

    def arrivals(self, subscription_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event["external_subscription_id"] == subscription_id]

    def wait_for_events(self, subscription_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events of a subscription arrived (for replays that run elsewhere)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r.event for r in self.received if r.event["external_subscription_id"] == subscription_id]
                if len(found) >= count or time.monotonic() >= deadline:
                    return found
                self._arrived.wait(deadline - time.monotonic())

    # --- the API ---------------------------------------------------------------------------
    def _next_step(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self._plan.pop(0) if self._plan else None

    def _create_event(self, request: Request) -> None:
        step = self._next_step()
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            request.send_json(401, {"status": 401, "error": "Unauthorized"})
            return
        if step is not None:
            kind, _, arg = step.partition(":")
            if kind == "reset":
                request.drop()
                return
            if kind == "429":
                request.send_json(429, {"status": 429, "error": "Too Many Requests"}, {"X-RateLimit-Reset": arg or "1"})
                return
            if kind.isdigit():
                request.send_json(int(kind), {"status": int(kind), "error": "Internal Server Error"})
                return
            if kind in ("hang", "slow"):
                time.sleep(float(arg or 1))
        try:
            body = request.json()
        except ValueError:
            request.send_json(400, {"status": 400, "error": "Bad request", "code": "bad_request"})
            return
        errors = sorted(_VALIDATOR.iter_errors(body), key=str)
        if errors:
            request.send_json(
                400,
                {
                    "status": 400,
                    "error": "Bad request",
                    "code": "bad_request",
                    "error_details": [e.message for e in errors],
                },
            )
            return
        event = body["event"]
        delay = self._delays.get(event["external_subscription_id"])
        if delay:
            time.sleep(delay)
        held = self._holds.get(event["external_subscription_id"])
        if held:
            held[0].set()
            held[1].wait(30)
        self._store(request, event)

    def _store(self, request: Request, event: dict[str, Any]) -> None:
        key = (event["transaction_id"], event["external_subscription_id"])
        with self._arrived:
            self.submitted.append(event)
            if key in self._keys:
                self.duplicates += 1
                duplicate = True
            else:
                self._keys.add(key)
                self.received.append(Received(event, time.monotonic()))
                self._arrived.notify_all()
                duplicate = False
        if duplicate:
            request.send_json(
                422,
                {
                    "status": 422,
                    "error": "Unprocessable Entity",
                    "code": "validation_errors",
                    "error_details": {"transaction_id": ["value_already_exist"]},
                },
            )
            return
        request.send_json(
            200,
            {
                "event": {
                    "lago_id": str(uuid.uuid4()),
                    "transaction_id": event["transaction_id"],
                    "lago_customer_id": str(uuid.uuid4()),
                    "code": event["code"],
                    "timestamp": event.get("timestamp") or f"{time.time():.3f}",
                    "lago_subscription_id": str(uuid.uuid4()),
                    "external_subscription_id": event["external_subscription_id"],
                    "properties": event.get("properties") or {},
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            },
        )
