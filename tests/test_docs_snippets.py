"""The calling snippets of docs/api.md and docs/clients.md, run as printed against the local run.

The emulators as ``scripts/run`` starts them (Hosting, Functions, Auth, with its settings), on
free ports: the snippets' ``127.0.0.1:5002`` (Hosting) and ``127.0.0.1:9099`` (Auth) are moved
to the suite's ports, nothing else is changed. The ``sh`` blocks run in one bash, the ``python``
blocks of each document in one interpreter; every model call they make is billed exactly once.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.lago import API_KEY as LAGO_KEY
from standins.lago import FakeLago
from standins.processes import ROOT, VENV_BIN
from tests.support.emulator_suite import EmulatorSuite, local_settings

API, CLIENTS = ROOT / "docs" / "api.md", ROOT / "docs" / "clients.md"


def blocks(document: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", document.read_text(), re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def suite(fake_lago: FakeLago) -> Iterator[EmulatorSuite]:
    suite = EmulatorSuite(local_settings(fake_lago.url, LAGO_KEY)).start()
    yield suite
    suite.stop()


def on_suite(text: str, suite: EmulatorSuite) -> str:
    return text.replace("http://127.0.0.1:5002", suite.hosting_url).replace("127.0.0.1:9099", suite.auth_host)


def bash(script: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def signed_in(suite: EmulatorSuite) -> dict[str, str]:
    """``URL`` and ``FIREBASE_ID_TOKEN`` as api.md's first snippet sets them."""
    first = on_suite(blocks(API, "sh")[0], suite)
    url, token = bash(first + '\nprintf "%s\\n%s" "$URL" "$FIREBASE_ID_TOKEN"').splitlines()
    assert token.count(".") == 2  # a JWT
    return {"URL": url, "FIREBASE_ID_TOKEN": token}


def billed_during(fake_lago: FakeLago, run: object) -> int:
    before = len(fake_lago.events())
    run()  # type: ignore[operator]
    return len(fake_lago.events()) - before


def test_api_md_shell_snippets_run_against_the_local_run(suite: EmulatorSuite, fake_lago: FakeLago) -> None:
    script = on_suite("\n".join(blocks(API, "sh")), suite)
    out: list[str] = []
    assert billed_during(fake_lago, lambda: out.append(bash(script))) == 2
    assert '"object": "chat.completion"' in out[0] and "data: [DONE]" in out[0]


def run_python(document: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "\n".join(blocks(document, "python"))],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_api_md_python_snippets_run_against_the_local_run(fake_lago: FakeLago, signed_in: dict[str, str]) -> None:
    out: list[str] = []
    # Chat: JSON, stream, a tool call, structured output; Responses: create, stream, a tool round trip.
    assert billed_during(fake_lago, lambda: out.append(run_python(API, signed_in))) == 4 + 4
    assert "This is the local demo model" in out[0] and "get_weather {'city':" in out[0]
    assert "The tools answered: get_weather: sunny, 21 C" in out[0]


def test_clients_md_python_snippets_run_against_the_local_run(fake_lago: FakeLago, signed_in: dict[str, str]) -> None:
    out: list[str] = []
    # openai-agents run and streamed (two calls each), pydantic-ai's tool (two) and person (one),
    # LangChain's answer and person.
    assert billed_during(fake_lago, lambda: out.append(run_python(CLIENTS, signed_in))) == 4 + 3 + 2
    assert out[0].count("The tools answered: get_weather: sunny in") >= 3 and "age=" in out[0]
