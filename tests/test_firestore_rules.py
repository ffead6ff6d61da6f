"""firestore.rules, enforced by gcloud's Firestore emulator, driven by ``@firebase/rules-unit-testing``.

The operations run in node (tests/rules/conversations.mjs, the Firebase JS SDK as the page uses it);
this module says which of them the rules must allow. One node run covers every case.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from standins.processes import ROOT, FirestoreEmulator

EXPECTED = {
    # The owner: the page's own writes.
    "owner creates a conversation": "allowed",
    "owner appends an exchange": "allowed",
    "owner renames": "allowed",
    "owner reads": "allowed",
    "owner lists": "allowed",
    "owner deletes": "allowed",
    "another user's own folder stays theirs": "allowed",
    # Anyone else.
    "another user reads": "denied",
    "another user lists": "denied",
    "another user writes": "denied",
    "another user creates in the owner's folder": "denied",
    "another user deletes": "denied",
    "signed-out reads": "denied",
    "a document outside users' conversations": "denied",
    # Sizes and shapes.
    "title over 200 characters": "denied",
    "message over 32000 characters": "denied",
    "appended message over 32000 characters": "denied",
    "more than two messages appended at once": "denied",
    "stored messages rewritten": "denied",
    "a message beyond 200": "denied",
    "a message with a field of its own": "denied",
    "a role other than user or assistant": "denied",
    "a field the page does not write": "denied",
    "an updated time that is not the server's": "denied",
}


@pytest.fixture(scope="module")
def outcomes(firestore_emulator: FirestoreEmulator) -> dict[str, str]:
    host, port = firestore_emulator.host.rsplit(":", 1)
    project = f"demo-rules-{uuid.uuid4().hex[:8]}"  # rules are loaded per project: no other test's
    run = subprocess.run(
        ["node", "tests/rules/conversations.mjs", "firestore.rules", host, port, project],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, str] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_rules_cover_every_case_the_script_runs(outcomes: dict[str, str]) -> None:
    assert set(outcomes) == set(EXPECTED)


@pytest.mark.parametrize("case", [case for case, allowed in EXPECTED.items() if allowed == "allowed"])
def test_rules_allow(outcomes: dict[str, str], case: str) -> None:
    assert outcomes[case] == "allowed"


@pytest.mark.parametrize("case", [case for case, allowed in EXPECTED.items() if allowed == "denied"])
def test_rules_deny(outcomes: dict[str, str], case: str) -> None:
    assert outcomes[case] == "denied"
