"""The durable outbox: usage events Lago did not take in time wait in Firestore until replayed.

Collection ``billing_outbox``, one document per event, its id the event's transaction id (so
storing twice is harmless). Pending documents carry ``next_attempt_at``; a permanently refused
event keeps ``status: "failed"`` and loses ``next_attempt_at``, so replays skip it but it stays
visible. Replays resend the stored event unchanged: same transaction id, same timestamp.

A replay run (``shared/replay.py``) reads a page of due documents (the query is finished
before anything is sent), claims them (``claim``: a lease written in a transaction), and after
sending them records the outcomes in batched writes (``settle``). A run that dies leaves its
claims to expire with their lease; they are due again then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .billing_event import LagoEvent
from .firestore_db import FirestoreDb
from .logs import log
from .shutdown import SHUTDOWN

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud import firestore

COLLECTION = "billing_outbox"
_MAX_BACKOFF = dt.timedelta(hours=1)
_BASE_BACKOFF = dt.timedelta(seconds=30)
_BATCH_TIMEOUT_S = 30.0  # per Firestore call of a replay run (a page of 500 on a busy database)
_WRITES_PER_COMMIT = 500  # Firestore's classic limit of writes in one batch or transaction


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Claimed:
    """A document a replay run holds: its id, its event, and how often it was tried before."""

    doc_id: str
    event: LagoEvent
    attempts: int


class Outbox:
    """Firestore-backed store of undelivered events, in the instance's one client (made on first use)."""

    def __init__(self, db: FirestoreDb, *, timeout_s: float = 5.0) -> None:
        self._db = db
        self._timeout_s = timeout_s

    @functools.cached_property
    def _retry(self) -> Retry:
        from google.api_core.retry import Retry

        return Retry(initial=0.1, maximum=1.0, timeout=self._timeout_s)

    @functools.cached_property
    def _batch_retry(self) -> Retry:
        """A replay's reads and writes: no request waits on them."""
        from google.api_core.retry import Retry

        return Retry(initial=0.2, maximum=2.0, timeout=_BATCH_TIMEOUT_S)

    def _firestore(self) -> firestore.Client:
        return self._db.client()

    def _collection(self) -> firestore.CollectionReference:
        return self._firestore().collection(COLLECTION)

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
        reference = self._collection().document(event["transaction_id"])
        timeout_s = SHUTDOWN.outbox_timeout(self._timeout_s)  # shorter once SIGTERM came
        try:
            reference.set(document, retry=self._retry if timeout_s == self._timeout_s else None, timeout=timeout_s)
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

    # --- what a replay run needs (shared/replay.py drives it) ----------------------------------

    def read_due(self, limit: int, after: Any = None) -> list[Any]:
        """Up to ``limit`` due documents, oldest first (after the snapshot ``after``, if given),
        read whole: no query stays open while they are sent."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._collection()
            .where(filter=FieldFilter("next_attempt_at", "<=", _now()))
            .order_by("next_attempt_at")
            .limit(limit)
        )
        if after is not None:
            query = query.start_after(after)
        return list(query.get(retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S))

    def claim(self, due: Sequence[Any], run_id: str, lease_until: dt.datetime) -> list[Claimed]:
        """Lease what is still due, in transactions: ``leased_by`` and a ``next_attempt_at`` at
        the lease's end. Of two runs that read the same documents, the second's transaction
        finds them leased (due in the future) and leaves them; Firestore retries a transaction
        that lost a race, so neither can claim a document the other holds."""
        from google.cloud import firestore

        @firestore.transactional
        def claim(transaction: firestore.Transaction, refs: list[Any]) -> list[Claimed]:
            now, mine = _now(), []
            for snapshot in transaction.get_all(refs, retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S):
                data = snapshot.to_dict() if snapshot.exists else None
                if not data or data.get("status") != "pending" or data.get("next_attempt_at", now) > now:
                    continue
                transaction.update(snapshot.reference, {"leased_by": run_id, "next_attempt_at": lease_until})
                mine.append(Claimed(snapshot.id, data.get("event", {}), int(data.get("attempts", 0))))
            return mine

        claimed: list[Claimed] = []
        for chunk in chunks([snapshot.reference for snapshot in due], _WRITES_PER_COMMIT):
            claimed.extend(claim(self._firestore().transaction(), chunk))
        return claimed

    def settle(
        self,
        *,
        delivered: Sequence[Claimed] = (),
        refused: Sequence[tuple[Claimed, str]] = (),
        retry: Sequence[tuple[Claimed, str]] = (),
        release: Sequence[Claimed] = (),
    ) -> None:
        """Record a run's outcomes in batched writes: delete what Lago has, keep what it refuses
        as failed, back off what failed for now, and make what was not sent due at once."""
        from google.cloud import firestore

        unlease = {"leased_by": firestore.DELETE_FIELD}
        writes: list[tuple[str, dict[str, Any] | None]] = [(c.doc_id, None) for c in delivered]
        for claim, detail in refused:
            failed = {"status": "failed", "last_error": detail, "next_attempt_at": firestore.DELETE_FIELD}
            writes.append((claim.doc_id, {**failed, **unlease}))
        for claim, detail in retry:
            delay = min(_MAX_BACKOFF, _BASE_BACKOFF * 2**claim.attempts)
            later = {"attempts": claim.attempts + 1, "last_error": detail, "next_attempt_at": _now() + delay}
            writes.append((claim.doc_id, {**later, **unlease}))
        writes.extend((c.doc_id, {"next_attempt_at": _now(), **unlease}) for c in release)
        for chunk in chunks(writes, _WRITES_PER_COMMIT):
            self._write(chunk)

    def _write(self, writes: list[tuple[str, dict[str, Any] | None]]) -> None:
        """Deletes (None) and updates in one batched write. An update of a document gone
        meanwhile (another run delivered it after this run's lease ran out) fails the whole
        batch: then each write goes alone and the gone ones are skipped."""
        from google.api_core.exceptions import NotFound

        batch = self._firestore().batch()
        for doc_id, update in writes:
            reference = self._collection().document(doc_id)
            if update is None:
                batch.delete(reference)
            else:
                batch.update(reference, update)
        try:
            batch.commit(retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S)
        except NotFound:
            for doc_id, update in writes:
                reference = self._collection().document(doc_id)
                with contextlib.suppress(NotFound):
                    if update is None:
                        reference.delete(retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S)
                    else:
                        reference.update(update, retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S)

    def count_pending(self) -> int | None:
        """Pending events, due now or backing off; None (logged) if Firestore cannot say."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query: Any = self._collection().where(filter=FieldFilter("status", "==", "pending")).count()
        try:
            result = query.get(retry=self._batch_retry, timeout=_BATCH_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - only the count is missing; the run's work is done
            log("WARNING", "billing_outbox_count_failed", error_class=type(error).__name__)
            return None
        return int(result[0][0].value)


_Item = TypeVar("_Item")


def chunks(items: Sequence[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
