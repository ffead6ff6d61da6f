"""scripts/reingest: events kept only in ``billing_outbox_write_failed`` log lines (Cloud
Logging's JSON export, or the functions' own lines) reach Lago with their original ids and
timestamps, once, however often it runs. Run as a process against the Lago stand-in."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from standins.lago import API_KEY, FakeLago
from standins.processes import ROOT
from tests.conftest import EVENT_CODE


def event(payer: str, hours_ago: float, **properties: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"chatcmpl-{uuid.uuid4().hex}",
        "external_subscription_id": payer,
        "code": EVENT_CODE,
        "timestamp": f"{time.time() - hours_ago * 3600:.3f}",
        "properties": {"model": "openai/gpt-4o-mini", "prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
        | properties,
    }


def cloud_logging_entry(lost: dict[str, Any]) -> str:
    """A LogEntry as ``gcloud logging read --format=json`` (or a sink) exports it."""
    return json.dumps(
        {
            "insertId": uuid.uuid4().hex[:16],
            "jsonPayload": {
                "message": "billing_outbox_write_failed",
                "error_class": "ServiceUnavailable",
                "event": lost,
            },
            "severity": "ERROR",
            "timestamp": "2026-11-29T10:00:00.123456Z",
            "logName": "projects/demo/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "chat"}},
        }
    )


def run(fake_lago: FakeLago, *files: Path) -> tuple[int, dict[str, Any]]:
    env = {"LAGO_API_BASE": fake_lago.url, "LAGO_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "reingest"), *map(str, files)], env=env, capture_output=True, text=True, timeout=120
    )
    assert API_KEY not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_reingest_sends_logged_events_with_their_ids_and_timestamps_once(fake_lago: FakeLago, tmp_path: Path) -> None:
    payer = f"payer-{uuid.uuid4().hex[:8]}"
    first, second = event(payer, hours_ago=3), event(payer, hours_ago=1, partial="true")
    lines = [
        cloud_logging_entry(first),
        cloud_logging_entry(first),  # the same line exported twice
        json.dumps({"severity": "ERROR", "message": "billing_outbox_write_failed", "event": second}),
        json.dumps({"severity": "WARNING", "message": "billing_event_deferred", "transaction_id": "x"}),
        "not json at all",
        cloud_logging_entry({"external_subscription_id": payer, "code": EVENT_CODE}),  # no id: not an event
        "",
    ]
    export = tmp_path / "lost.jsonl"
    export.write_text("\n".join(lines) + "\n")

    status, summary = run(fake_lago, export)
    assert status == 0, summary
    assert summary == {"events": 2, "delivered": 2, "already_in_lago": 0, "failed": [], "skipped_lines": 3}
    assert fake_lago.events(payer) == [first, second], "original ids, timestamps and properties"

    status, summary = run(fake_lago, export)  # run again: Lago dedupes, nothing is billed twice
    assert status == 0 and (summary["delivered"], summary["already_in_lago"]) == (0, 2)
    assert fake_lago.events(payer) == [first, second]


def test_reingest_exits_1_naming_the_events_lago_refuses(fake_lago: FakeLago, tmp_path: Path) -> None:
    payer = f"payer-{uuid.uuid4().hex[:8]}"
    refused = event(payer, hours_ago=2, partial=True)  # a boolean property: Lago's schema refuses it
    export = tmp_path / "lost.jsonl"
    export.write_text(cloud_logging_entry(refused) + "\n")
    status, summary = run(fake_lago, export)
    assert status == 1
    assert [f["transaction_id"] for f in summary["failed"]] == [refused["transaction_id"]]
    assert summary["failed"][0]["status"] == 400
    assert fake_lago.events(payer) == []
