"""The durable outbox: usage events Lago did not take in time wait in Firestore until replayed.

Collection ``billing_outbox``, one document per event, its id the event's transaction id (so
storing twice is harmless). Pending documents carry ``next_attempt_at``; a permanently refused
event keeps ``status: "failed"`` and loses ``next_attempt_at``, so replays skip it but it stays
visible. Replays resend the stored event unchanged: same transaction id, same timestamp.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .billing_event import LagoEvent
from .lago_events import Delivery, LagoEventsClient, Outcome
from .logs import log

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud import firestore

COLLECTION = "billing_outbox"
_MAX_BACKOFF = dt.timedelta(hours=1)
_BASE_BACKOFF = dt.timedelta(seconds=30)
_GIVE_UP_AFTER = 3  # transient failures in a row that end a replay run


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ReplayReport:
    delivered: int = 0
    retry_later: int = 0
    failed: int = 0
    deferred: int = 0  # due, but left for the next run (time budget spent, or Lago down)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retry_later": self.retry_later,
            "failed": self.failed,
            "deferred": self.deferred,
        }


class Outbox:
    """Firestore-backed store of undelivered events. The client is made lazily, after the
    server forks (gRPC channels must not cross a fork), once per instance. The Firestore
    libraries are imported then too: ~0.3 s of cold start that only an outbox write needs."""

    def __init__(self, project_id: str, *, timeout_s: float = 5.0) -> None:
        self._project_id = project_id or None
        self._timeout_s = timeout_s
        self._retry: Retry | None = None
        self._client: firestore.Client | None = None
        self._lock = threading.Lock()

    def _collection(self) -> firestore.CollectionReference:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from google.api_core.retry import Retry
                    from google.cloud import firestore

                    self._retry = Retry(initial=0.1, maximum=1.0, timeout=self._timeout_s)
                    self._client = firestore.Client(project=self._project_id)
        return self._client.collection(COLLECTION)

    def store(self, event: LagoEvent, *, reason: str, permanent: bool = False) -> bool:
        """Keep an event for replay; False (and an ERROR line holding the event) if Firestore fails too."""
        document: dict[str, Any] = {
            "event": dict(event),
            "status": "failed" if permanent else "pending",
            "attempts": 0,
            "last_error": reason,
            "stored_at": _now(),
        }
        if not permanent:
            document["next_attempt_at"] = _now()
        try:
            self._collection().document(event["transaction_id"]).set(
                document, retry=self._retry, timeout=self._timeout_s
            )
        except Exception as error:  # noqa: BLE001 - last line of defence: the log keeps the event
            log("ERROR", "billing_outbox_write_failed", error_class=type(error).__name__, event=dict(event))
            return False
        log(
            "WARNING",
            "billing_event_deferred",
            transaction_id=event["transaction_id"],
            reason=reason,
            permanent=permanent,
        )
        return True

    def replay(
        self, client: LagoEventsClient, *, limit: int, per_event_timeout_s: float, budget_s: float
    ) -> ReplayReport:
        """Send due events oldest first: delete on delivery, back off on transient failures.

        Bounded: the run ends after ``budget_s``, or after a few transient failures in a row
        (Lago is down: the rest waits for the next run rather than each costing a timeout).
        """
        from google.cloud.firestore_v1.base_query import FieldFilter

        report = ReplayReport()
        ends_at = time.monotonic() + budget_s
        failures_in_a_row = 0
        query = (
            self._collection()
            .where(filter=FieldFilter("next_attempt_at", "<=", _now()))
            .order_by("next_attempt_at")
            .limit(limit)
        )
        for snapshot in query.stream(retry=self._retry, timeout=self._timeout_s):
            if time.monotonic() >= ends_at or failures_in_a_row >= _GIVE_UP_AFTER:
                report.deferred += 1
                continue
            data = snapshot.to_dict() or {}
            delivery = client.send(data.get("event", {}), min(ends_at, time.monotonic() + per_event_timeout_s))
            transient = not delivery.outcome.delivered and delivery.outcome is not Outcome.PERMANENT
            failures_in_a_row = failures_in_a_row + 1 if transient else 0
            self._record(snapshot, data, delivery, report)
        return report

    def _record(self, snapshot: Any, data: dict[str, Any], delivery: Delivery, report: ReplayReport) -> None:
        if delivery.outcome.delivered:
            snapshot.reference.delete(retry=self._retry, timeout=self._timeout_s)
            report.delivered += 1
        elif delivery.outcome is Outcome.PERMANENT:
            from google.cloud import firestore

            update = {"status": "failed", "last_error": delivery.detail, "next_attempt_at": firestore.DELETE_FIELD}
            snapshot.reference.update(update, retry=self._retry, timeout=self._timeout_s)
            log(
                "ERROR",
                "billing_event_refused",
                transaction_id=snapshot.id,
                status=delivery.status,
                detail=delivery.detail,
            )
            report.failed += 1
        else:
            attempts = int(data.get("attempts", 0)) + 1
            delay = min(_MAX_BACKOFF, _BASE_BACKOFF * 2 ** (attempts - 1))
            update = {"attempts": attempts, "last_error": delivery.detail, "next_attempt_at": _now() + delay}
            snapshot.reference.update(update, retry=self._retry, timeout=self._timeout_s)
            report.retry_later += 1
