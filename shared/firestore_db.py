"""The instance's one Firestore client, shared by the billing outbox, the spend ledger and the
rate limits: one gRPC channel and one set of credentials per instance, however many use it.

Made on first use: after the server forks (gRPC channels must not cross a fork), and only by a
store that needs it. The Firestore libraries are imported then too: ~0.3 s of cold start that an
instance without budgets, limits or an undelivered event never pays.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import firestore


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
