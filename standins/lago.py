"""A Lago stand-in for the events API, answering as Lago does.

- ``POST /api/v1/events``: Bearer auth (401), the body checked against Lago's ``EventInput``
  schema (OpenAPI 1.51.0; 400 when it does not match), 200 with the stored event, and 422
  ``value_already_exist`` for a transaction id already stored for that subscription
  (Lago's Postgres event store).
- ``POST /api/v1/events/batch``: ``{"events": [...]}`` (``EventBatchInput``), at most 100 (422
  ``too_many_events``; none: ``no_events``), all or nothing as Lago's ``Events::CreateBatchService``:
  if any event is invalid, nothing is stored and the 422's ``error_details`` maps each such
  event's index (a string) to its errors, e.g. ``{"3": {"transaction_id": ["value_already_exist"]}}``.
- ``rate_limit(n)``: at most ``n`` event requests (single and batch) per one-second window;
  beyond it a 429 with ``X-RateLimit-Reset``, the seconds until the window ends, as Lago does.
- Faults, planned per test: ``plan(500, 500)`` answers the next requests with those statuses;
  ``plan("429:2")`` with ``X-RateLimit-Reset: 2``; ``plan("hang:5")`` waits 5 s then stores
  the event (the client has long given up); ``plan("reset")`` drops the connection;
  ``plan("slow:0.5")`` waits then answers normally; ``delay_for(payer, seconds)`` slows every
  request carrying one payer's events; ``hold(payer)`` keeps them until released. ``stop()`` /
  ``start()`` make the port refuse connections.
- ``GET /api/v1/customers/{external_id}``: 200 ``{"customer": ...}`` or 404 ``customer_not_found``;
  ``POST /api/v1/customers`` creates or updates (Lago's create is an upsert).
- Every accepted event is recorded with its arrival time (``time.monotonic()`` of this process);
  ``submitted`` keeps every well-formed event posted, refused resends included.
"""

from __future__ import annotations

import calendar
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jsonschema

from .http_server import Request, StandIn, StandInServer

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
# components.schemas.EventBatchInput: the same event objects, in a list.
EVENT_BATCH_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "properties": {"events": {"type": "array", "items": EVENT_INPUT_SCHEMA["properties"]["event"]}},
}
_BATCH_VALIDATOR = jsonschema.Draft202012Validator(EVENT_BATCH_INPUT_SCHEMA)
BATCH_MAX_LENGTH = 100  # LAGO_EVENTS_BATCH_MAX_LENGTH's default


@dataclass(frozen=True)
class Received:
    event: dict[str, Any]
    arrived_at: float


class FakeLago(StandIn):
    def __init__(self, api_key: str = API_KEY, port: int = 0) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._keys: set[tuple[str, str]] = set()
        self.requests = 0
        self.batch_requests = 0
        self.rate_limited = 0  # 429s answered because of rate_limit()
        self.duplicates = 0
        self._rate_limit: int | None = None
        self._window: tuple[float, int] = (0.0, 0)  # (start, requests in it)
        self.submitted: list[dict[str, Any]] = []  # every well-formed event posted, resends included
        self._plan: list[str] = []
        self._delays: dict[str, float] = {}
        self._holds: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._extra_usage: dict[str, int] = {}
        self._arrived = threading.Condition(self._lock)
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.account_requests: list[str] = []
        self._account_plan: list[str] = []
        self.server = StandInServer(
            [
                ("POST", r"/api/v1/events", self._create_event),
                ("POST", r"/api/v1/events/batch", self._create_batch),
                ("POST", r"/api/v1/customers", self._create_customer),
                ("GET", r"/api/v1/customers/(?P<customer>[^/]+)", self._find_customer),
                ("GET", r"/api/v1/customers/(?P<customer>[^/]+)/current_usage", self._current_usage),
                ("POST", r"/api/v1/subscriptions", self._create_subscription),
            ],
            port=port,
        )

    # --- test controls -------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._plan.clear()
            self._account_plan.clear()
            self._delays.clear()
            self._rate_limit = None
            for _, release in self._holds.values():
                release.set()
            self._holds.clear()

    def plan(self, *steps: int | str) -> None:
        with self._lock:
            self._plan.extend(str(step) for step in steps)

    def rate_limit(self, per_second: int | None) -> None:
        """Answer event requests beyond ``per_second`` in a one-second window with 429."""
        with self._lock:
            self._rate_limit = per_second
            self._window = (0.0, 0)

    def plan_accounts(self, *steps: int | str) -> None:
        """Faults for the customers, subscriptions and usage routes (same steps as ``plan``)."""
        with self._lock:
            self._account_plan.extend(str(step) for step in steps)

    def add_customer(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        """A customer that already exists in Lago (made by an operator, or by another system)."""
        with self._lock:
            customer = self.customers[customer_id] = _customer({"external_id": customer_id, **fields})
            return customer

    def set_budget(self, customer_id: str, cents: int) -> None:
        """Put a per-customer budget in the customer's metadata, as an operator would in Lago."""
        with self._lock:
            customer = self.customers.setdefault(customer_id, _customer({"external_id": customer_id}))
            customer["metadata"] = [_metadata("chat_budget_cents", str(cents))]

    def add_usage(self, payer: str, cents: int) -> None:
        """Usage that came from elsewhere (another instance, an earlier day of the period)."""
        with self._lock:
            self._extra_usage[payer] = self._extra_usage.get(payer, 0) + cents

    def delay_for(self, payer: str, seconds: float) -> None:
        """Slow every request that carries one of this payer's events by ``seconds``."""
        with self._lock:
            self._delays[payer] = seconds

    def hold(self, payer: str) -> tuple[threading.Event, threading.Event]:
        """Hold that payer's events until released: ``(arrived, release)``."""
        arrived, release = threading.Event(), threading.Event()
        with self._lock:
            self._holds[payer] = (arrived, release)
        return arrived, release

    def events(self, payer: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received if payer in (None, r.event["external_subscription_id"])]

    def arrivals(self, payer: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event["external_subscription_id"] == payer]

    def wait_for_events(self, payer: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events of a payer arrived (for replays that run elsewhere)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r.event for r in self.received if r.event["external_subscription_id"] == payer]
                if len(found) >= count or time.monotonic() >= deadline:
                    return found
                self._arrived.wait(deadline - time.monotonic())

    # --- the API ---------------------------------------------------------------------------
    def _next_step(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self._plan:
                return self._plan.pop(0)
            return self._rate_step()

    def _rate_step(self) -> str | None:
        """A ``429`` step past the rate limit (called with the lock held)."""
        if self._rate_limit is None:
            return None
        now = time.monotonic()
        start, count = self._window
        if now - start >= 1.0:
            start, count = now, 0
        self._window = (start, count + 1)
        if count < self._rate_limit:
            return None
        self.rate_limited += 1
        return f"429:{max(0.001, 1.0 - (now - start)):.3f}"

    def _unauthorized(self, request: Request) -> bool:
        """Lago's 401 for a request without this API key; True when it was sent."""
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return False
        request.send_json(401, {"status": 401, "error": "Unauthorized"})
        return True

    def _fault(self, request: Request, step: str | None) -> bool:
        """Answer with the planned fault (or auth failure); True when the request is answered."""
        if self._unauthorized(request):
            return True
        if step is None:
            return False
        kind, _, arg = step.partition(":")
        if kind == "reset":
            request.drop()
            return True
        if kind == "429":
            request.send_json(429, {"status": 429, "error": "Too Many Requests"}, {"X-RateLimit-Reset": arg or "1"})
            return True
        if kind.isdigit():
            request.send_json(int(kind), {"status": int(kind), "error": "Internal Server Error"})
            return True
        if kind in ("hang", "slow"):
            time.sleep(float(arg or 1))
        return False

    def _bad_request(self, request: Request, details: list[str] | None = None) -> None:
        body: dict[str, Any] = {"status": 400, "error": "Bad request", "code": "bad_request"}
        if details is not None:
            body["error_details"] = details
        request.send_json(400, body)

    def _valid_body(self, request: Request, validator: Any) -> dict[str, Any] | None:
        """The request's JSON if it is valid against Lago's schema; else a 400 was sent (None)."""
        try:
            body: dict[str, Any] = request.json()
        except ValueError:
            self._bad_request(request)
            return None
        errors = sorted(validator.iter_errors(body), key=str)
        if errors:
            self._bad_request(request, [e.message for e in errors])
            return None
        return body

    def _create_event(self, request: Request) -> None:
        if self._fault(request, self._next_step()):
            return
        body = self._valid_body(request, _VALIDATOR)
        if body is None:
            return
        event = body["event"]
        self._slow_down([event])
        self._store(request, event)

    def _slow_down(self, events: list[dict[str, Any]]) -> None:
        """The planned per-subscription delays and holds of these events."""
        subscriptions = {e["external_subscription_id"] for e in events}
        delay = max((self._delays.get(s, 0.0) for s in subscriptions), default=0.0)
        if delay:
            time.sleep(delay)
        for subscription in subscriptions:
            held = self._holds.get(subscription)
            if held:
                held[0].set()
                held[1].wait(30)

    def _create_batch(self, request: Request) -> None:
        with self._lock:
            self.batch_requests += 1
        if self._fault(request, self._next_step()):
            return
        body = self._valid_body(request, _BATCH_VALIDATOR)
        if body is None:
            return
        events: list[dict[str, Any]] = body["events"]
        if not events or len(events) > BATCH_MAX_LENGTH:
            _validation_errors(request, {"events": ["no_events" if not events else "too_many_events"]})
            return
        self._slow_down(events)
        self._store_batch(request, events)

    def _store_batch(self, request: Request, events: list[dict[str, Any]]) -> None:
        """All or nothing: one invalid event (here: one already stored) refuses the whole batch."""
        keys = [(e["transaction_id"], e["external_subscription_id"]) for e in events]
        with self._arrived:
            self.submitted.extend(events)
            taken = {str(i): {"transaction_id": ["value_already_exist"]} for i, k in enumerate(keys) if k in self._keys}
            if taken:
                self.duplicates += len(taken)
            else:
                self._keys.update(keys)
                now = time.monotonic()
                self.received.extend(Received(event, now) for event in events)
                self._arrived.notify_all()
        if taken:
            _validation_errors(request, taken)
            return
        request.send_json(200, {"events": [_created(event) for event in events]})

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
            _already_exists(request, "transaction_id")
            return
        request.send_json(200, {"event": _created(event)})

    # --- customers, subscriptions, current usage (Lago OpenAPI 1.51.0 shapes) ---------------
    def _account_fault(self, request: Request) -> bool:
        with self._lock:
            self.account_requests.append(f"{request.method} {request.path}")
            step = self._account_plan.pop(0) if self._account_plan else None
        if self._unauthorized(request):
            return True
        if step is None:
            return False
        kind, _, arg = step.partition(":")
        if kind == "reset":
            request.drop()
            return True
        if kind in ("hang", "slow"):
            time.sleep(float(arg or 1))
            if kind == "slow":
                return False
            request.drop()
            return True
        request.send_json(int(kind), {"status": int(kind), "error": "Internal Server Error"})
        return True

    def _create_customer(self, request: Request) -> None:
        if self._account_fault(request):
            return
        body = (request.json() or {}).get("customer") or {}
        if not isinstance(body.get("external_id"), str):
            request.send_json(400, {"status": 400, "error": "Bad request", "code": "bad_request"})
            return
        with self._lock:  # create or update, as Lago does
            customer = self.customers.get(body["external_id"]) or _customer(body)
            customer.update({k: v for k, v in body.items() if k in ("email", "name")})
            self.customers[body["external_id"]] = customer
        request.send_json(200, {"customer": customer})

    def _find_customer(self, request: Request) -> None:
        if self._account_fault(request):
            return
        customer = self.customers.get(request.params["customer"])
        if customer is None:
            request.send_json(404, {"status": 404, "error": "Not Found", "code": "customer_not_found"})
            return
        request.send_json(200, {"customer": customer})

    def _create_subscription(self, request: Request) -> None:
        if self._account_fault(request):
            return
        body = (request.json() or {}).get("subscription") or {}
        if not all(isinstance(body.get(k), str) for k in ("external_customer_id", "plan_code", "external_id")):
            request.send_json(400, {"status": 400, "error": "Bad request", "code": "bad_request"})
            return
        with self._lock:
            if body["external_customer_id"] not in self.customers:
                request.send_json(404, {"status": 404, "error": "Not Found", "code": "customer_not_found"})
                return
            if body["external_id"] in self.subscriptions:
                _already_exists(request, "external_id")
                return
            subscription = _subscription(body, self.customers[body["external_customer_id"]])
            self.subscriptions[body["external_id"]] = subscription
        request.send_json(200, {"subscription": subscription})

    def _current_usage(self, request: Request) -> None:
        if self._account_fault(request):
            return
        customer_id = request.params["customer"]
        query = dict(part.split("=", 1) for part in request.query.split("&") if "=" in part)
        subscription_id = query.get("external_subscription_id", "")
        subscription = self.subscriptions.get(subscription_id)
        if customer_id not in self.customers or subscription is None:
            request.send_json(404, {"status": 404, "error": "Not Found", "code": "customer_not_found"})
            return
        request.send_json(200, {"customer_usage": self._usage_for(subscription_id)})

    def _usage_for(self, subscription_id: str) -> dict[str, Any]:
        """Usage priced at cost (``response_cost`` summed, in cents), tokens grouped by model."""
        events = self.events(subscription_id)
        by_model: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_model.setdefault(str(event["properties"].get("model")), []).append(event)
        groups: list[dict[str, Any]] = [
            {
                "amount_cents": round(sum(float(e["properties"].get("response_cost", 0)) for e in group) * 100),
                "events_count": len(group),
                "units": str(sum(int(e["properties"].get("total_tokens", 0)) for e in group)),
                "total_aggregated_units": str(sum(int(e["properties"].get("total_tokens", 0)) for e in group)),
                "grouped_by": {"model": model},
                "filters": [],
            }
            for model, group in sorted(by_model.items())
        ]
        amount = sum(g["amount_cents"] for g in groups) + self._extra_usage.get(subscription_id, 0)
        # The period is the current calendar month, as a monthly plan billed on the 1st has it.
        now = time.gmtime()
        last_day = calendar.monthrange(now.tm_year, now.tm_mon)[1]
        return {
            "from_datetime": time.strftime("%Y-%m-01T00:00:00Z", now),
            "to_datetime": time.strftime(f"%Y-%m-{last_day:02d}T23:59:59Z", now),
            "issuing_date": time.strftime(f"%Y-%m-{last_day:02d}", now),
            "lago_invoice_id": None,
            "currency": "USD",
            "amount_cents": amount,
            "taxes_amount_cents": 0,
            "total_amount_cents": amount,
            "charges_usage": [
                {
                    "units": str(sum(float(g["units"]) for g in groups)),
                    "total_aggregated_units": str(sum(float(g["units"]) for g in groups)),
                    "events_count": len(events),
                    "amount_cents": sum(g["amount_cents"] for g in groups),
                    "amount_currency": "USD",
                    "charge": {"lago_id": str(uuid.uuid4()), "charge_model": "standard", "invoice_display_name": None},
                    "billable_metric": {
                        "lago_id": str(uuid.uuid4()),
                        "name": "LLM tokens",
                        "code": "llm_tokens",
                        "aggregation_type": "sum_agg",
                    },
                    "filters": [],
                    "grouped_usage": groups,
                }
            ],
        }


def _already_exists(request: Request, field: str) -> None:
    """Lago's answer to a second object with the same unique field (Postgres store)."""
    _validation_errors(request, {field: ["value_already_exist"]})


def _validation_errors(request: Request, details: dict[str, Any]) -> None:
    request.send_json(
        422,
        {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors", "error_details": details},
    )


def _created(event: dict[str, Any]) -> dict[str, Any]:
    """Lago's ``EventCreated`` object for a stored event."""
    return {
        "lago_id": str(uuid.uuid4()),
        "transaction_id": event["transaction_id"],
        "lago_customer_id": None,
        "code": event["code"],
        "timestamp": event.get("timestamp") or f"{time.time():.3f}",
        "lago_subscription_id": str(uuid.uuid4()),
        "external_subscription_id": event["external_subscription_id"],
        "properties": event.get("properties") or {},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _metadata(key: str, value: str) -> dict[str, Any]:
    return {
        "lago_id": str(uuid.uuid4()),
        "key": key,
        "value": value,
        "display_in_invoice": False,
        "created_at": _now_iso(),
    }


def _customer(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "lago_id": str(uuid.uuid4()),
        "sequential_id": 1,
        "slug": "cust",
        "external_id": body["external_id"],
        "applicable_timezone": "UTC",
        "created_at": _now_iso(),
        "updated_at": _now_iso(),
        "email": body.get("email"),
        "name": body.get("name"),
        "currency": "USD",
        "metadata": [],
    }


def _subscription(body: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    now = _now_iso()
    return {
        "lago_id": str(uuid.uuid4()),
        "external_id": body["external_id"],
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": body["external_customer_id"],
        "billing_time": "calendar",
        "name": None,
        "plan_code": body["plan_code"],
        "status": "active",
        "created_at": now,
        "canceled_at": None,
        "started_at": now,
        "ending_at": None,
        "subscription_at": now,
        "terminated_at": None,
        "previous_plan_code": None,
        "next_plan_code": None,
        "downgrade_plan_date": None,
        "trial_ended_at": None,
        "current_billing_period_started_at": now,
        "current_billing_period_ending_at": None,
        "on_termination_credit_note": None,
        "on_termination_invoice": "generate",
    }
