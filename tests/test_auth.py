"""Who may call: Firebase ID tokens verified by firebase-admin, on the emulator and production paths."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.conftest import PROJECT_ID, User
from tests.standins.google_certs import FakeGoogleCerts, unsigned_token
from tests.support.api import CHAT
from tests.support.processes import FunctionServer

BODY = {"messages": [{"role": "user", "content": "hello"}]}


def call(server: FunctionServer, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.url + CHAT, json=BODY, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"


# --- production path: RS256 tokens checked against (our own) Google certificates -------------


def test_valid_signed_token_is_accepted(prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts) -> None:
    assert call(prod_auth_server, google_certs.mint(PROJECT_ID, "signed-user")).status_code == 200


@pytest.mark.parametrize(
    "attack",
    [
        "tampered",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "other_project",
        "alg_none",
        "unknown_kid",
        "wrong_key",
        "no_kid",
        "future_iat",
        "empty_sub",
    ],
)
def test_bad_tokens_are_401_on_the_production_path(
    prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts, attack: str
) -> None:
    mint = google_certs.mint
    tokens = {
        "expired": lambda: mint(PROJECT_ID, "u1", lifetime_s=60, issued_ago_s=7200),
        "wrong_audience": lambda: mint(PROJECT_ID, "u1", aud="another-project"),
        "wrong_issuer": lambda: mint(PROJECT_ID, "u1", iss="https://evil.example/demo"),
        "other_project": lambda: mint("demo-someone-else", "u1"),
        "alg_none": lambda: unsigned_token(
            {
                "iss": f"https://securetoken.google.com/{PROJECT_ID}",
                "aud": PROJECT_ID,
                "sub": "u1",
                "iat": int(time.time()),
                "exp": int(time.time()) + 3600,
                "auth_time": int(time.time()),
            }
        ),
        "unknown_kid": lambda: mint(PROJECT_ID, "u1", kid="kid-google-never-issued"),
        "wrong_key": lambda: mint(PROJECT_ID, "u1", key=google_certs.other_key),
        "no_kid": lambda: mint(PROJECT_ID, "u1", kid=None),
        "future_iat": lambda: mint(PROJECT_ID, "u1", iat=int(time.time()) + 3600),
        "empty_sub": lambda: mint(PROJECT_ID, "u1", sub=""),
    }
    if attack == "tampered":
        header, payload, signature = mint(PROJECT_ID, "u1").split(".")
        forged = json.loads(httpx._utils.to_str(__import__("base64").urlsafe_b64decode(payload + "==")))
        forged["sub"] = forged["user_id"] = "admin"
        payload = __import__("base64").urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        token = f"{header}.{payload}.{signature}"
    else:
        token = tokens[attack]()
    assert_401(call(prod_auth_server, token))


def test_emulator_tokens_are_refused_on_the_production_path(prod_auth_server: FunctionServer, user: User) -> None:
    assert_401(call(prod_auth_server, user.token))


# --- emulator path ------------------------------------------------------------------------


def test_emulator_token_is_accepted(chat_server: FunctionServer, user: User) -> None:
    assert call(chat_server, user.token).status_code == 200


def test_token_in_body_or_query_does_not_authenticate(chat_server: FunctionServer, user: User) -> None:
    response = httpx.post(
        chat_server.url + CHAT + f"?access_token={user.token}",
        json={**BODY, "api_key": user.token, "id_token": user.token},
        timeout=30,
    )
    assert_401(response)


@pytest.fixture(scope="module")
def revocation_server(function_server) -> FunctionServer:
    return function_server(CHAT_CHECK_REVOKED="true")


def test_revoked_token_is_401_when_revocation_is_checked(
    revocation_server: FunctionServer, auth_emulator, user: User
) -> None:
    assert call(revocation_server, user.token).status_code == 200
    auth_emulator.admin("POST", "accounts:update", {"localId": user.uid, "validSince": str(int(time.time()) + 1)})
    assert_401(call(revocation_server, user.token))


def test_disabled_user_is_401_when_revocation_is_checked(
    revocation_server: FunctionServer, auth_emulator, user: User
) -> None:
    auth_emulator.admin("POST", "accounts:update", {"localId": user.uid, "disableUser": True})
    assert_401(call(revocation_server, user.token))


def test_deleted_user_is_401_when_revocation_is_checked(
    revocation_server: FunctionServer, auth_emulator, user: User
) -> None:
    auth_emulator.admin("POST", "accounts:delete", {"localId": user.uid})
    assert_401(call(revocation_server, user.token))


# --- anonymous use: an explicit local switch only -------------------------------------------


def test_anonymous_switch_serves_without_a_token_locally(function_server, fake_lago) -> None:
    server = function_server(ALLOW_ANONYMOUS="true")
    response = call(server, None)
    assert response.status_code == 200
    assert fake_lago.events("anonymous")[-1]["transaction_id"] == response.json()["id"]


def test_anonymous_switch_refuses_to_start_on_a_deployed_instance(base_env: dict[str, str]) -> None:
    from tests.support.processes import ROOT, VENV_BIN, source_env

    env = {**base_env, "ALLOW_ANONYMOUS": "true", "K_SERVICE": "chat"}
    result = subprocess.run(
        [str(VENV_BIN / "functions-framework"), "--source", "functions/main.py", "--target", "chat", "--port", "0"],
        cwd=ROOT,
        env=source_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ALLOW_ANONYMOUS" in result.stdout + result.stderr
