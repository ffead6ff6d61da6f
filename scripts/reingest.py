"""Send to Lago the usage events that only a ``billing_outbox_write_failed`` log line kept.

When Lago and Firestore were both down, a request's event survives only in that ERROR line
(``event``: the whole Lago event). Export the lines from Cloud Logging as JSON lines, e.g.::

    gcloud logging read 'jsonPayload.message="billing_outbox_write_failed"' \\
        --format=json --freshness=30d | jq -c '.[]' > lost.jsonl

(or a logging sink's export), then::

    LAGO_API_BASE=https://api.getlago.com LAGO_API_KEY=... scripts/reingest lost.jsonl

Each line may be a Cloud Logging ``LogEntry`` (the event under ``jsonPayload``) or one of the
functions' own JSON log lines. Every event is sent with its original ``transaction_id`` and
``timestamp``, so Lago dedupes what it already has (422 ``value_already_exist`` counts as
delivered) and running this twice bills nothing twice. Other lines are skipped and counted.
Prints one JSON summary; exits 0 when every event is in Lago, 1 when some are not (their ids
are listed), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.billing_event import LagoEvent
from shared.lago_events import LagoEventsClient, Outcome

LOG_MESSAGE = "billing_outbox_write_failed"
_REQUIRED = ("transaction_id", "external_subscription_id", "code", "timestamp")
PER_EVENT_TIMEOUT_S = 10.0


def events_from_lines(lines: Iterable[str]) -> tuple[list[LagoEvent], int]:
    """The events in the log lines, each once (by ``transaction_id``), and how many lines were skipped."""
    events: dict[str, LagoEvent] = {}
    skipped = 0
    for line in lines:
        event = _event(line)
        if event is None:
            skipped += bool(line.strip())
        else:
            events.setdefault(event["transaction_id"], event)
    return list(events.values()), skipped


def _event(line: str) -> LagoEvent | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    payload = entry.get("jsonPayload", entry)
    if not isinstance(payload, dict) or payload.get("message") != LOG_MESSAGE:
        return None
    event = payload.get("event")
    if not isinstance(event, dict) or not all(isinstance(event.get(key), str) for key in _REQUIRED):
        return None
    if not isinstance(event.get("properties", {}), dict):
        return None
    return cast(LagoEvent, {key: event[key] for key in (*_REQUIRED, "properties") if key in event})


def reingest(events: list[LagoEvent], client: LagoEventsClient) -> dict[str, Any]:
    """Send each event; the counts, and the ids Lago did not take."""
    delivered = duplicates = 0
    failed: list[dict[str, Any]] = []
    for event in events:
        delivery = client.send(event, time.monotonic() + PER_EVENT_TIMEOUT_S)
        if delivery.outcome is Outcome.DUPLICATE:
            duplicates += 1
        elif delivery.outcome.delivered:
            delivered += 1
        else:
            failed.append(
                {"transaction_id": event["transaction_id"], "status": delivery.status, "detail": delivery.detail}
            )
    return {"events": len(events), "delivered": delivered, "already_in_lago": duplicates, "failed": failed}


def _lines(paths: list[str], stdin: TextIO) -> Iterator[str]:
    if not paths:
        yield from stdin
    for path in paths:
        with open(path, encoding="utf-8") as file:
            yield from file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/reingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="JSON-lines files of log entries (default: stdin)")
    args = parser.parse_args(argv)
    base, key = os.environ.get("LAGO_API_BASE", "").strip(), os.environ.get("LAGO_API_KEY", "").strip()
    if not (base and key):
        print("scripts/reingest: set LAGO_API_BASE and LAGO_API_KEY", file=sys.stderr)
        return 2
    try:
        events, skipped = events_from_lines(_lines(args.files, sys.stdin))
    except OSError as error:
        print(f"scripts/reingest: {error}", file=sys.stderr)
        return 2
    client = LagoEventsClient(base, key)
    try:
        summary = reingest(events, client)
    finally:
        client.close()
    print(json.dumps({**summary, "skipped_lines": skipped}))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
