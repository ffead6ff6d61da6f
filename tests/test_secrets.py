"""Secrets from Secret Manager at cold start: real functions-framework servers and the real
google-cloud-secret-manager client, against a stand-in speaking Secret Manager's v1 REST API.

Each server covers several secrets at once (a cold start costs seconds): ``loaded_server`` reads
the default list from project ``PROJECT_ID``; ``faults_server`` reads an explicit ``SECRETS``
list (renamed, pinned, missing, denied, corrupt and slow secrets) from a project of its own.
"""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shared.secret_env import SecretRef, load_secrets, wanted_secrets
from standins.http_server import Request
from standins.lago import API_KEY as LAGO_KEY
from standins.lago import FakeLago
from standins.openai_llm import FakeOpenAI
from standins.processes import FunctionServer, free_port
from standins.secret_manager import FakeSecretManager
from tests.conftest import DEFAULT_MODEL, EVENT_CODE, PROJECT_ID, User
from tests.support.api import ask, chat
from tests.support.polling import eventually

ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
MODELS = f"{DEFAULT_MODEL},local/demo,{ANTHROPIC_MODEL}"
FAULTS_PROJECT = "demo-secrets-faults"
TIMEOUT_S = 2.0
# A cold start takes 3-5 s here before any secret is read, and over 15 s when the two cores are
# busy (seen in CI). The secrets phase itself is bounded precisely by its logged elapsed_ms; this
# margin only has to stay below the minute the client's default retry would take when hanging.
COLD_START_MARGIN_S = 40.0

OPENAI_FROM_SM = "sk-sm-default-do-not-log"
OPENAI_V1, OPENAI_V2, OPENAI_V3 = "sk-sm-v1-do-not-log", "sk-sm-v2-do-not-log", "sk-sm-v3-do-not-log"
OLD_LAGO_KEY = "lago-old-key-do-not-log"
CORRUPT_VALUE = "http://corrupt.example/do-not-log"
DENIED_VALUE = "denied-value-do-not-log"
SLOW_VALUE = "slow-value-do-not-log"
VALUES = (
    OPENAI_FROM_SM,
    OPENAI_V1,
    OPENAI_V2,
    OPENAI_V3,
    OLD_LAGO_KEY,
    CORRUPT_VALUE,
    DENIED_VALUE,
    SLOW_VALUE,
    LAGO_KEY,
)
_ready_after: dict[int, float] = {}  # port -> seconds from process start to first answer
SECRETS_ENV_REMOVED = {"LAGO_API_BASE": None, "LAGO_API_KEY": None, "LAGO_API_EVENT_CODE": None, "OPENAI_API_KEY": None}


class KeyRecordingLLM(FakeOpenAI):
    """The OpenAI stand-in, also recording each request's ``Authorization`` header."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        super().__init__()

    def _chat(self, request: Request) -> None:
        self.authorizations.append(request.headers.get("Authorization", ""))
        super()._chat(request)


class SilentServer:
    """Accepts TCP connections and never answers: an endpoint that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self._held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


def start_timed(function_server: Callable[..., FunctionServer], **env: str | None) -> FunctionServer:
    """A function server, its cold start timed from process start to its first answer."""
    server = function_server(**env)
    _ready_after[server.port] = time.monotonic() - server.started_at
    return server


@pytest.fixture(scope="module")
def secret_manager() -> Iterator[FakeSecretManager]:
    server = FakeSecretManager().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recording_llm() -> Iterator[KeyRecordingLLM]:
    server = KeyRecordingLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def loaded_server(function_server, secret_manager: FakeSecretManager, fake_lago: FakeLago) -> FunctionServer:
    """The default list (no ``SECRETS``) from ``GOOGLE_CLOUD_PROJECT``; ``LAGO_API_CHARGE_BY`` in the env."""
    sm = secret_manager
    sm.add(PROJECT_ID, "LAGO_API_BASE", fake_lago.url)
    sm.add(PROJECT_ID, "LAGO_API_KEY", OLD_LAGO_KEY, LAGO_KEY)
    sm.add(PROJECT_ID, "LAGO_API_EVENT_CODE", EVENT_CODE)
    sm.add(PROJECT_ID, "LAGO_API_CHARGE_BY", "team_id")  # the env's user_id must win
    sm.add(PROJECT_ID, "OPENAI_API_KEY", OPENAI_FROM_SM)
    return function_server(SECRET_MANAGER_EMULATOR_HOST=sm.host, CHAT_MODELS=MODELS, **SECRETS_ENV_REMOVED)


@pytest.fixture(scope="module")
def faults_server(function_server, secret_manager: FakeSecretManager, recording_llm: KeyRecordingLLM) -> FunctionServer:
    """An explicit list: every Lago secret fails, OpenAI's is renamed and pinned, Anthropic's hangs."""
    sm, project = secret_manager, FAULTS_PROJECT
    sm.add(project, "lago-base", CORRUPT_VALUE)
    sm.fault(project, "lago-base", "corrupt")
    sm.add(project, "lago-key", DENIED_VALUE)
    sm.fault(project, "lago-key", "denied")
    sm.add(project, "openai-key", OPENAI_V1, OPENAI_V2, OPENAI_V3)
    sm.add(project, "LAGO_API_CHARGE_BY", "team_id")
    sm.add(project, "ANTHROPIC_API_KEY", SLOW_VALUE)
    sm.fault(project, "ANTHROPIC_API_KEY", "slow", 60)
    secrets = (
        "LAGO_API_BASE=lago-base, LAGO_API_KEY=lago-key LAGO_API_EVENT_CODE=lago-event "
        "LAGO_API_CHARGE_BY,OPENAI_API_KEY=openai-key:2  ANTHROPIC_API_KEY"
    )
    return start_timed(
        function_server,
        SECRET_MANAGER_EMULATOR_HOST=sm.host,
        SECRETS_PROJECT=project,
        SECRETS=secrets,
        SECRETS_TIMEOUT_S=str(TIMEOUT_S),
        CHAT_MODELS=MODELS,
        OPENAI_API_BASE=recording_llm.base_url,
        **SECRETS_ENV_REMOVED,
    )


def lines(server: FunctionServer, message: str) -> list[dict[str, Any]]:
    return [line for line in server.log_lines() if line["message"] == message]


def assert_no_values(server: FunctionServer, *responses: httpx.Response) -> None:
    """No secret value in the server's output (all of it, not only our JSON lines) or a body."""
    texts = [server.logs(), *(r.text for r in responses)]
    leaked = [value for value in VALUES for text in texts if value in text]
    assert leaked == []


def assert_unavailable(response: httpx.Response, model: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "error": {
            "message": f"The model '{model}' is not available: its provider credentials are missing.",
            "type": "api_error",
            "code": "service_unavailable",
            "param": None,
        }
    }


# --- the default list, loaded: chat works and is billed with Secret Manager's key ---------------


def test_default_list_loads_lago_and_provider_keys(
    loaded_server: FunctionServer, secret_manager: FakeSecretManager, fake_lago: FakeLago, user: User
) -> None:
    response = chat(loaded_server, user, ask("hello", model=DEFAULT_MODEL))
    assert response.status_code == 200, response.text
    events = fake_lago.events(user.uid)
    assert [e["transaction_id"] for e in events] == [response.json()["id"]], "billed with the key from version 2"
    assert events[0]["code"] == EVENT_CODE
    [summary] = lines(loaded_server, "secrets_loaded")
    assert sorted(summary["loaded"]) == ["LAGO_API_BASE", "LAGO_API_EVENT_CODE", "LAGO_API_KEY", "OPENAI_API_KEY"]
    assert summary["already_set"] == ["LAGO_API_CHARGE_BY"]
    assert secret_manager.requests(PROJECT_ID)["LAGO_API_CHARGE_BY"] == 0, "a variable in the env costs no call"
    assert lines(loaded_server, "lago_logging_enabled")
    assert_no_values(loaded_server, response)


def test_optional_provider_key_missing_makes_its_model_503(loaded_server: FunctionServer, user: User) -> None:
    responses = [
        chat(loaded_server, user, ask("hello", model=ANTHROPIC_MODEL)),
        chat(loaded_server, user, ask("hello", model=ANTHROPIC_MODEL, stream=True)),
    ]
    for response in responses:
        assert_unavailable(response, ANTHROPIC_MODEL)
    assert chat(loaded_server, user, ask("hello", model="local/demo")).status_code == 200
    [missing] = lines(loaded_server, "secret_unavailable")
    assert missing == {
        "severity": "INFO",  # an optional secret of the default list
        "message": "secret_unavailable",
        "variable": "ANTHROPIC_API_KEY",
        "secret": "ANTHROPIC_API_KEY",
        "version": "latest",
        "reason": "not_found",
        "error_class": "NotFound",
    }
    [model] = lines(loaded_server, "model_unavailable")
    assert (model["model"], model["missing"]) == (ANTHROPIC_MODEL, ["ANTHROPIC_API_KEY"])
    assert_no_values(loaded_server, *responses)


# --- an explicit list with faults: named, never a value, the instance still serves --------------


def test_renamed_and_pinned_secret_is_the_one_used(
    faults_server: FunctionServer, secret_manager: FakeSecretManager, recording_llm: KeyRecordingLLM, user: User
) -> None:
    response = chat(faults_server, user, ask("hello", model=DEFAULT_MODEL))
    assert response.status_code == 200, response.text
    assert recording_llm.authorizations[-1] == f"Bearer {OPENAI_V2}", "version 2, not latest (3)"
    asked = [(s, v) for p, s, v in secret_manager.accessed if p == FAULTS_PROJECT and s == "openai-key"]
    assert asked == [("openai-key", "2")]
    assert secret_manager.requests(FAULTS_PROJECT)["LAGO_API_CHARGE_BY"] == 0
    assert_no_values(faults_server, response)


def test_failed_secrets_are_named_and_billing_is_disabled_loudly(
    faults_server: FunctionServer, fake_lago: FakeLago, user: User
) -> None:
    failures = {line["variable"]: line for line in lines(faults_server, "secret_unavailable")}
    assert {name: (line["secret"], line["reason"]) for name, line in failures.items()} == {
        "LAGO_API_BASE": ("lago-base", "corrupt"),
        "LAGO_API_KEY": ("lago-key", "permission_denied"),
        "LAGO_API_EVENT_CODE": ("lago-event", "not_found"),
        "ANTHROPIC_API_KEY": ("ANTHROPIC_API_KEY", "timeout"),
    }
    assert all(line["severity"] == "ERROR" for line in failures.values()), "named in SECRETS: required"
    [disabled] = lines(faults_server, "lago_logging_disabled")
    assert disabled["missing"] == ["LAGO_API_BASE", "LAGO_API_KEY", "LAGO_API_EVENT_CODE"]
    response = chat(faults_server, user, ask("hello", model=DEFAULT_MODEL))
    assert response.status_code == 200, "the instance serves without billing"
    assert fake_lago.events(user.uid) == []
    assert_no_values(faults_server, response)


def test_slow_secret_bounds_the_cold_start_and_its_model_503s(faults_server: FunctionServer, user: User) -> None:
    [summary] = lines(faults_server, "secrets_loaded")
    assert summary["elapsed_ms"] < (TIMEOUT_S + 1.5) * 1000, "the slow secret answers after 60 s"
    assert _ready_after[faults_server.port] < TIMEOUT_S + COLD_START_MARGIN_S
    response = chat(faults_server, user, ask("hello", model=ANTHROPIC_MODEL))
    assert_unavailable(response, ANTHROPIC_MODEL)
    assert_no_values(faults_server, response)


# --- dead endpoints: the cold start stays bounded ----------------------------------------------


def test_dead_endpoints_bound_the_cold_start(function_server: Callable[..., FunctionServer]) -> None:
    silent = SilentServer()
    try:
        hosts = {"refused": f"127.0.0.1:{free_port()}", "silent": silent.host}
        servers = {
            kind: function_server(
                wait=False,
                SECRET_MANAGER_EMULATOR_HOST=host,
                SECRETS="LAGO_API_KEY OPENAI_API_KEY",
                SECRETS_TIMEOUT_S=str(TIMEOUT_S),
                LAGO_API_KEY=None,
                OPENAI_API_KEY=None,
            )
            for kind, host in hosts.items()
        }
        for kind, server in servers.items():
            server.wait_ready(TIMEOUT_S + COLD_START_MARGIN_S)
            assert time.monotonic() - server.started_at < TIMEOUT_S + COLD_START_MARGIN_S, kind
            reasons = {line["variable"]: line["reason"] for line in lines(server, "secret_unavailable")}
            assert reasons == {"LAGO_API_KEY": "timeout", "OPENAI_API_KEY": "timeout"}, kind
            [summary] = lines(server, "secrets_loaded")
            assert summary["elapsed_ms"] < (TIMEOUT_S + 1.5) * 1000, kind
            assert lines(server, "instance_started"), kind
    finally:
        silent.close()


# --- nowhere to load from; the list itself (in process, same real client) ------------------------


def test_no_emulator_and_not_deployed_skips_loading(chat_server: FunctionServer) -> None:
    skipped = lines(chat_server, "secrets_skipped")
    assert skipped == [
        {"severity": "INFO", "message": "secrets_skipped", "reason": "not deployed and no SECRET_MANAGER_EMULATOR_HOST"}
    ]


def test_secrets_list_forms() -> None:
    refs = wanted_secrets({"SECRETS": " A, B=b-id\tC=c-id:3,,D=d:latest bad-name! E=e:0 A=a2"})
    assert refs == (
        SecretRef("A", "a2"),
        SecretRef("B", "b-id"),
        SecretRef("C", "c-id", "3"),
        SecretRef("D", "d", "latest"),
    )
    assert wanted_secrets({"SECRETS": ""}) == ()


def test_latest_skips_disabled_versions_and_unusable_payloads_are_corrupt(secret_manager: FakeSecretManager) -> None:
    project = "demo-secrets-in-process"
    secret_manager.add(project, "rotated", "v1-do-not-log", "v2-do-not-log")
    secret_manager.disable(project, "rotated", 2)
    secret_manager.add(project, "binary", b"\xff\xfe")
    secret_manager.add(project, "nul", "a\x00b")
    env = {
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host,
        "SECRETS_PROJECT": project,
        "SECRETS": "ROTATED=rotated PINNED_DISABLED=rotated:2 BINARY=binary NUL=nul EMPTY=rotated",
        "EMPTY": "",  # an empty variable counts as unset
    }
    report = load_secrets(env)
    assert report.loaded == ("ROTATED", "EMPTY")
    assert env["ROTATED"] == env["EMPTY"] == "v1-do-not-log"
    assert dict(report.failures) == {"PINNED_DISABLED": "error", "BINARY": "corrupt", "NUL": "corrupt"}
    assert "BINARY" not in env and "NUL" not in env


# --- billing required, Lago's key unreadable at cold start: 503 + Retry-After, then recovery ------

RETRY_PROJECT = "demo-secrets-retry"


@pytest.fixture(scope="module")
def retry_server(function_server, secret_manager: FakeSecretManager) -> FunctionServer:
    """Billing required; ``LAGO_API_KEY`` comes from Secret Manager, whose only version is disabled."""
    secret_manager.add(RETRY_PROJECT, "LAGO_API_KEY", LAGO_KEY)
    secret_manager.disable(RETRY_PROJECT, "LAGO_API_KEY", 1)
    return function_server(
        SECRET_MANAGER_EMULATOR_HOST=secret_manager.host,
        SECRETS_PROJECT=RETRY_PROJECT,
        SECRETS="LAGO_API_KEY",
        CHAT_REQUIRE_BILLING="true",
        LAGO_API_KEY=None,
    )


def assert_billing_503(response: httpx.Response) -> int:
    """The 503 of an instance waiting for billing's secrets; returns its ``Retry-After``."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == {
        "message": "Chat is unavailable: billing's settings could not be read yet; retry shortly.",
        "type": "api_error",
        "code": "service_unavailable",
        "param": None,
    }
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_unreadable_lago_secret_is_503_with_retry_after_until_it_reads_then_chat_is_billed(
    retry_server: FunctionServer, secret_manager: FakeSecretManager, fake_lago: FakeLago, user: User
) -> None:
    def reads() -> int:
        return secret_manager.requests(RETRY_PROJECT)["LAGO_API_KEY"]

    wait = assert_billing_503(chat(retry_server, user, ask("hello", model=DEFAULT_MODEL)))
    before = reads()
    wait = assert_billing_503(chat(retry_server, user, ask("hello", model=DEFAULT_MODEL)))
    assert reads() == before, "backing off: no read, and the request is answered at once"
    assert fake_lago.events(user.uid) == []

    secret_manager.enable(RETRY_PROJECT, "LAGO_API_KEY", 1)
    secret_manager.fault(RETRY_PROJECT, "LAGO_API_KEY", "held", 20)
    time.sleep(wait)  # the server's own Retry-After: the next read is due
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reader = pool.submit(chat, retry_server, user, ask("hello", model=DEFAULT_MODEL))
        eventually(reads, lambda count: count > before, what="the retry's read", timeout=20)
        started = time.monotonic()
        other = chat(retry_server, user, ask("hello", model=DEFAULT_MODEL))
        assert time.monotonic() - started < 2, "not blocked behind the read"
        assert_billing_503(other)
        secret_manager.release_held()
        served = reader.result(timeout=30)
    assert served.status_code == 200, served.text
    assert [e["transaction_id"] for e in fake_lago.events(user.uid)] == [served.json()["id"]]
    assert chat(retry_server, user, ask("hello", model=DEFAULT_MODEL)).status_code == 200
    assert [line["message"] for line in retry_server.log_lines()].count("lago_logging_enabled") == 1
    [recovered] = lines(retry_server, "billing_recovered")
    assert recovered["billing"] is True
    assert_no_values(retry_server, served)
