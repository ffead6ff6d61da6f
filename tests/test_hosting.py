"""The Hosting rewrite to the chat function, under ``firebase emulators:exec`` (the real command).

The exec'd script (tests/support/hosting_client.py) signs up in the Auth emulator that exec
started, then calls ``/api/v1/chat/completions`` on the Hosting emulator, as JSON and streamed,
and writes what it saw to a file that this test reads.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from standins.lago import API_KEY as LAGO_KEY
from standins.lago import FakeLago
from standins.processes import VENV_BIN
from tests.support.emulator_suite import EmulatorSuite, local_settings

pytestmark = pytest.mark.slow

DELAY_S = 0.08
ANSWER = "This is the local demo model. You said: one two three four five six"


def test_hosting_rewrite_serves_chat_json_and_stream_under_emulators_exec(fake_lago: FakeLago, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    suite = EmulatorSuite(local_settings(fake_lago.url, LAGO_KEY, LOCAL_MODEL_DELAY_MS=str(int(DELAY_S * 1000))))
    script = [str(VENV_BIN / "python"), "-m", "tests.support.hosting_client", suite.hosting_url, str(out)]
    done = suite.exec(shlex.join(script), timeout=300)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-4000:]
    results = json.loads(out.read_text())
    assert results["auth_emulator_host"] == suite.auth_host

    unauthenticated = results["unauthenticated"]
    assert unauthenticated["status"] == 401
    assert unauthenticated["body"]["error"]["code"] == "invalid_api_key"

    reply = results["json"]
    assert reply["status"] == 200 and reply["content_type"].startswith("application/json")
    assert reply["body"]["choices"][0]["message"]["content"] == ANSWER

    streamed = results["stream"]
    assert streamed["status"] == 200 and streamed["content_type"].startswith("text/event-stream")
    events = streamed["events"]
    assert events[-1]["data"] == "[DONE]"
    chunks = [json.loads(e["data"]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == ANSWER
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    # Streamed through the rewrite, not buffered: the pieces arrive spread over the model's pauses.
    pieces = [e["at"] for e, c in zip(events, chunks, strict=False) if c["choices"]]
    assert pieces[-1] - pieces[0] >= (len(pieces) - 1) * DELAY_S * 0.5

    # Both calls billed in Lago, each under its response id, neither partial.
    [uid] = {e["external_subscription_id"] for e in fake_lago.events() if e["transaction_id"] == reply["body"]["id"]}
    billed = {e["transaction_id"]: e for e in fake_lago.events(uid)}
    assert set(billed) == {reply["body"]["id"], chunks[0]["id"]}
    assert all("partial" not in e["properties"] for e in billed.values())
