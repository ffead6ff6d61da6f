"""Exactly-once usage billing: each request delivers its own calls' events before it responds.

Cloud Functions throttles an instance's CPU once the response is sent, so nothing may be left
in flight. The request's ``RequestBilling.flush`` builds each call's event from the usage the
request itself saw (the response, a stream's usage chunk, or a cut stream's estimate), priced
by ``pricing``, sends it within the request's deadline, and writes what Lago did not take to
the Firestore outbox. LiteLLM's Lago callback (subclassed here) only *collects* LiteLLM's own
record of a call, on LiteLLM's logging threads at an unknown moment: it is used only for a call
the request never recorded, and is priced by the same code, so no race between the two
threads decides a price.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import litellm
from litellm.integrations.lago import LagoLogger

from .auth import Caller
from .billing_event import CallContext, LagoEvent, build_event, format_timestamp
from .errors import ApiError, ErrorCode
from .lago_events import LagoEventsClient, Outcome
from .logs import log
from .outbox import Outbox
from .pricing.usage import CallUsage, log_if_above, priced, read_usage
from .reservation import NO_RESERVATION, Reservation
from .settings import LagoSettings
from .shutdown import SHUTDOWN


class PendingEvents:
    """Per instance: the calls in flight and the events the callback collected for them.

    Only expected calls are kept, and a call is forgotten when its request flushes, so a late
    or foreign callback cannot grow this without bound.
    """

    def __init__(self, event_code: str) -> None:
        self._event_code = event_code
        self._lock = threading.Lock()
        self._calls: dict[str, CallContext] = {}
        self._events: dict[str, LagoEvent] = {}

    def expect(self, call: CallContext) -> None:
        with self._lock:
            self._calls[call.call_id] = call

    def collect(self, call_id: str, response: Any) -> None:
        with self._lock:
            call = self._calls.get(call_id)
        if call is None:
            return
        usage = priced(call.model, read_usage(getattr(response, "usage", None), model=call.model))
        event = event_for(call, usage, self._event_code)
        with self._lock:
            if call_id in self._calls:
                self._events[call_id] = event

    def take(self, call_id: str) -> LagoEvent | None:
        with self._lock:
            self._calls.pop(call_id, None)
            return self._events.pop(call_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls) + len(self._events)


def event_for(call: CallContext, usage: CallUsage, event_code: str) -> LagoEvent:
    return build_event(
        call_id=call.call_id,
        timestamp=call.timestamp,
        payer=call.payer,
        code=event_code,
        model=call.model,
        usage=usage,
    )


class ChatLagoCallback(LagoLogger):
    """LiteLLM's Lago callback, made to collect events for the request instead of sending them
    (LiteLLM's own send uses a fresh id per attempt, no timestamp, and finishes too late)."""

    def __init__(self, pending: PendingEvents) -> None:
        super().__init__()
        self.pending = pending

    def _collect(self, kwargs: dict[str, Any], response_obj: Any) -> None:
        call_id = kwargs.get("litellm_call_id")
        if isinstance(call_id, str) and isinstance(response_obj, litellm.ModelResponse):
            self.pending.collect(call_id, response_obj)  # LiteLLM's response_cost is not used

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._collect(kwargs, response_obj)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._collect(kwargs, response_obj)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Failed calls bill nothing (the handler logs ``llm_call_failed``)."""

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Failed calls bill nothing."""


_registration_lock = threading.Lock()
_registered: ChatLagoCallback | None = None


def register_callback(pending: PendingEvents) -> ChatLagoCallback:
    """Register the callback on LiteLLM's success and failure lists once per process.

    Thread-safe and idempotent. The string ``"lago"`` is removed if present: beside our
    subclass it would bill every call twice.
    """
    global _registered
    with _registration_lock:
        if _registered is not None:
            return _registered
        for name in ("callbacks", "success_callback", "failure_callback", "_async_success_callback"):
            entries = getattr(litellm, name)
            if "lago" in entries:
                entries[:] = [entry for entry in entries if entry != "lago"]
                log("WARNING", "lago_string_callback_removed", list=name)
        callback = ChatLagoCallback(pending)
        litellm.logging_callback_manager.add_litellm_success_callback(callback)
        litellm.logging_callback_manager.add_litellm_failure_callback(callback)
        _registered = callback
        log("INFO", "lago_logging_enabled")
        return callback


class Billing:
    """Per instance: Lago settings, the events client, the collected events and the outbox.

    ``enabled`` is False when Lago is not configured; requests then bill nothing.
    """

    def __init__(self, lago: LagoSettings, *, outbox: Outbox | None, deployed: bool) -> None:
        self.settings = lago
        self.pending = PendingEvents(lago.event_code)
        self.client: LagoEventsClient | None = None
        self.outbox = outbox
        self.enabled = False
        if not lago.enabled:
            log("WARNING" if deployed else "INFO", "lago_logging_disabled", missing=list(lago.missing))
            return
        try:
            register_callback(self.pending)
        except Exception as error:  # noqa: BLE001 - chat keeps serving; the line says why
            log("ERROR", "lago_logging_error", error_class=type(error).__name__, detail=str(error)[:300])
            return
        self.client = LagoEventsClient(lago.api_base, lago.api_key)
        self.enabled = True

    def payer_for(self, caller: Caller) -> str:
        """Whom to bill, from the verified token only (``LAGO_API_CHARGE_BY``)."""
        if self.settings.charge_by == "team_id":
            team = caller.claims.get(self.settings.team_claim)
            if not isinstance(team, str) or not team:
                raise ApiError(ErrorCode.FORBIDDEN, "Your account is not in a team that can be billed.")
            return team
        return caller.uid

    def for_request(self, caller: Caller) -> RequestBilling:
        return RequestBilling(self, caller)


class RequestBilling:
    """One request's calls and their billing. ``flush`` before the response's last byte."""

    def __init__(self, billing: Billing, caller: Caller) -> None:
        self._billing = billing
        self._caller = caller
        self._payer = billing.payer_for(caller) if billing.enabled else caller.uid
        self._calls: list[CallContext] = []
        self._usage: dict[str, CallUsage] = {}
        self._failed: set[str] = set()
        self._reservation = NO_RESERVATION
        self._worst_case: float | None = None

    @property
    def payer(self) -> str:
        """Whom this request's calls are billed to (the Lago ``external_subscription_id``)."""
        return self._payer

    def hold(self, reservation: Reservation, worst_case: float | None = None) -> None:
        """Keep the budget reservation until the flush settles it with the calls' real cost
        (``worst_case``: its dollars, which a bill passes only with a log line saying so)."""
        self._reservation = reservation
        self._worst_case = worst_case

    def start_call(self, model: str) -> CallContext:
        """A new call id and time, registered so the callback's event can be matched to it."""
        call = CallContext(
            call_id=f"chatcmpl-{uuid.uuid4().hex}",
            timestamp=format_timestamp(time.time()),
            uid=self._caller.uid,
            payer=self._payer,
            model=model,
        )
        self._calls.append(call)
        if self._billing.enabled:
            self._billing.pending.expect(call)
        return call

    def succeeded(self, call: CallContext, response: Any) -> CallUsage:
        """A finished call: the usage of its response (or a stream's usage chunk), priced."""
        usage = priced(call.model, read_usage(getattr(response, "usage", None), model=call.model))
        self._usage[call.call_id] = usage
        return usage

    def cut_short(self, call: CallContext, usage: CallUsage) -> None:
        """A stream that ended before its usage chunk, billed at ``usage`` (``pricing.partial_usage``)."""
        self._usage[call.call_id] = usage

    def failed(self, call: CallContext) -> None:
        self._failed.add(call.call_id)

    def flush(self) -> None:
        """Deliver this request's events now, within ``LAGO_FLUSH_TIMEOUT_S``; keep the rest in the outbox.

        Safe to call more than once (later calls bill only calls started since) and on failure paths.
        """
        calls, self._calls = self._calls, []
        events = [event for call in calls if (event := self._event(call)) is not None]
        cost = sum(float(e["properties"].get("response_cost", 0)) for e in events)
        if events:
            log_if_above(calls[0].model, cost, self._worst_case)
        self._reservation.settle(cost * 100)
        if not self._billing.enabled:
            return
        deadline = SHUTDOWN.lago_deadline(time.monotonic() + self._billing.settings.flush_timeout_s)
        for event in events:
            self._deliver(event, deadline)

    def _event(self, call: CallContext) -> LagoEvent | None:
        collected = self._billing.pending.take(call.call_id) if self._billing.enabled else None
        usage = self._usage.pop(call.call_id, None)
        if call.call_id in self._failed:
            return None  # failed: nothing to bill
        if usage is not None:  # what the request saw comes first; the callback's record is a fallback
            return event_for(call, usage, self._billing.settings.event_code)
        return collected

    def _deliver(self, event: LagoEvent, deadline: float) -> None:
        assert self._billing.client is not None
        delivery = self._billing.client.send(event, deadline)
        if delivery.outcome.delivered:
            return
        permanent = delivery.outcome is Outcome.PERMANENT
        if permanent:
            log(
                "ERROR",
                "billing_event_refused",
                transaction_id=event["transaction_id"],
                status=delivery.status,
                detail=delivery.detail,
            )
        reason = f"{delivery.outcome.value}: {delivery.status or delivery.detail}"
        if self._billing.outbox is not None:
            self._billing.outbox.store(event, reason=reason, permanent=permanent)  # logs the event if it fails
        else:
            log("ERROR", "billing_event_undelivered", transaction_id=event["transaction_id"], event=dict(event))
