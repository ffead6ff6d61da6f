"""The instance's one Firestore client, shared by the billing outbox, the spend ledger and the
rate limits: one gRPC channel and one set of credentials per instance, however many use it.

Made on first use: after the server forks (gRPC channels must not cross a fork), and only by a
store that needs it. The Firestore libraries are imported then too: ~0.3 s of cold start that an
instance without budgets, limits or an undelivered event never pays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")
_MAX_ATTEMPTS = 20  # a transaction retried on contention: one hot payer's instances race for its document


class FirestoreDb:
    """The project's default database, through a client made once, when first asked for."""

    def __init__(self, project_id: str | None) -> None:
        self._project_id = project_id or None  # None: the client finds the project itself
        self._client: firestore.Client | None = None
        self._lock = threading.Lock()

    def client(self) -> firestore.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from google.cloud import firestore

                    self._client = firestore.Client(project=self._project_id)
        return self._client

    def transact(
        self,
        collection: str,
        doc_id: str,
        change: Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, T]],
        *,
        timeout_s: float,
    ) -> T:
        """One document read, changed and written in one transaction. ``change`` gets its data
        (None: no such document) and returns what to write (None: nothing) and the result; it
        runs again if the transaction is retried, so it must depend only on what it is given."""
        from google.cloud import firestore

        client = self.client()
        reference = client.collection(collection).document(doc_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> T:
            snapshot = reference.get(transaction=transaction, timeout=timeout_s)
            new, result = change(snapshot.to_dict() if snapshot.exists else None)
            if new is not None:
                transaction.set(reference, new)
            return result

        result: T = run(client.transaction(max_attempts=_MAX_ATTEMPTS))
        return result
