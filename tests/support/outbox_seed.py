"""Usage events queued in the Firestore outbox, written fast (batched writes, in parallel), as
the chat function stores them when Lago does not take them in time."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.cloud import firestore

COLLECTION = "billing_outbox"


def queued_event(payer: str, code: str = "llm_tokens") -> dict[str, Any]:
    """An event as the function builds it (``shared/billing_event.py``): Lago's ``EventInput`` object."""
    transaction_id = f"chatcmpl-{uuid.uuid4().hex}"
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": payer,
        "code": code,
        "timestamp": f"{time.time():.3f}",
        "properties": {
            "model": "openai/gpt-4o-mini",
            "prompt_tokens": 12,
            "completion_tokens": 30,
            "total_tokens": 42,
            "response_cost": 0.0000198,
        },
    }


def seed_outbox(client: firestore.Client, payer: str, count: int) -> list[str]:
    """Queue ``count`` pending events for ``payer``, due now; their transaction ids."""
    now = dt.datetime.now(dt.UTC)
    events = [queued_event(payer) for _ in range(count)]

    def write(chunk: list[dict[str, Any]]) -> None:
        batch = client.batch()
        for event in chunk:
            document = {
                "event": event,
                "status": "pending",
                "attempts": 0,
                "last_error": "transient: 503",
                "stored_at": now,
                "next_attempt_at": now,
            }
            batch.set(client.collection(COLLECTION).document(event["transaction_id"]), document)
        batch.commit()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, [events[i : i + 500] for i in range(0, count, 500)]))
    return [event["transaction_id"] for event in events]
