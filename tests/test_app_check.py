"""Firebase App Check on the real server: real RS256 App Check tokens verified by firebase-admin
against App Check's JWKS (our keys, served locally), in enforce, monitor and off modes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from standins.app_check_keys import PROJECT_NUMBER, FakeAppCheck
from standins.google_certs import FakeGoogleCerts, unsigned_token
from standins.processes import FunctionServer
from tests.conftest import CONSUME_MODEL, PROJECT_ID, User
from tests.support.api import APP_CHECK_HEADER, Bearer, ask, chat

OLD_ACCOUNT = 60 * 86400  # past the new-account period of SIGN_IN_POLICY_ENV: no account lookup


def id_token(certs: FakeGoogleCerts, uid: str = "app-user", **claims: Any) -> str:
    """A signed ID token the sign-in policy lets through (verified email, password sign-in)."""
    base: dict[str, Any] = {
        "auth_time": int(time.time()) - OLD_ACCOUNT,
        "email": f"{uid}@example.com",
        "email_verified": True,
        "firebase": {"identities": {}, "sign_in_provider": "password"},
    }
    return certs.mint(PROJECT_ID, uid, **{**base, **claims})


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", code)


# --- enforce ----------------------------------------------------------------------------------


def test_enforce_refuses_a_call_without_an_app_check_token(guarded_server, google_certs) -> None:
    response = chat(guarded_server, Bearer(id_token(google_certs)), ask())
    assert_refused(response, "app_check_missing")
    assert APP_CHECK_HEADER in response.json()["error"]["message"]


def test_enforce_serves_a_call_with_a_valid_app_check_token(guarded_server, google_certs, app_check_keys) -> None:
    response = chat(guarded_server, Bearer(id_token(google_certs), app_check_keys.mint(PROJECT_ID)), ask())
    assert response.status_code == 200, response.text


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "1:999:web:attacker"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# Every attack is refused by the gate in process (tests/unit/test_token_checks.py); through the
# server, one.
@pytest.mark.parametrize(
    "attack",
    [
        "forged_key",
    ],
)
def test_enforce_refuses_invalid_app_check_tokens(
    guarded_server: FunctionServer, google_certs: FakeGoogleCerts, app_check_keys: FakeAppCheck, attack: str
) -> None:
    mint = app_check_keys.mint
    now = int(time.time())
    tokens = {
        "forged_key": lambda: mint(PROJECT_ID, key=app_check_keys.other_key),
        "tampered": lambda: _tampered(mint(PROJECT_ID)),
        "expired": lambda: mint(PROJECT_ID, lifetime_s=60, issued_ago_s=3600),
        "other_project": lambda: mint(PROJECT_ID, aud=["projects/999", "projects/demo-someone-else"]),
        "wrong_issuer": lambda: mint(PROJECT_ID, iss=f"https://evil.example/{PROJECT_NUMBER}"),
        "unknown_kid": lambda: mint(PROJECT_ID, kid="kid-firebase-never-issued"),
        "no_kid": lambda: mint(PROJECT_ID, kid=None),
        "no_typ_header": lambda: mint(PROJECT_ID, typ=None),
        "alg_none": lambda: unsigned_token(
            {
                "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
                "aud": [f"projects/{PROJECT_ID}"],
                "sub": "1:2:web:3",
                "iat": now,
                "exp": now + 3600,
            }
        ),
        "garbage": lambda: "not-a-token",
        "id_token_instead": lambda: id_token(google_certs),
    }
    response = chat(guarded_server, Bearer(id_token(google_certs), tokens[attack]()), ask())
    assert_refused(response, "app_check_invalid")


def test_a_limited_use_token_is_refused_on_replay_for_a_consume_model(
    guarded_server, google_certs, app_check_keys
) -> None:
    token = app_check_keys.mint(PROJECT_ID)
    assert chat(guarded_server, Bearer(id_token(google_certs), token), ask(model=CONSUME_MODEL)).status_code == 200
    replayed = chat(guarded_server, Bearer(id_token(google_certs), token), ask(model=CONSUME_MODEL))
    assert_refused(replayed, "app_check_invalid")
    assert "already used" in replayed.json()["error"]["message"]
    assert token in app_check_keys.consumed


def test_app_check_tokens_are_reusable_for_other_models(guarded_server, google_certs, app_check_keys) -> None:
    token = app_check_keys.mint(PROJECT_ID)
    assert [chat(guarded_server, Bearer(id_token(google_certs), token), ask()).status_code for _ in range(3)] == [
        200
    ] * 3
    assert token not in app_check_keys.consumed


def test_consume_model_is_503_while_the_app_check_api_is_down(guarded_server, google_certs, app_check_keys) -> None:
    chat(guarded_server, Bearer(id_token(google_certs), app_check_keys.mint(PROJECT_ID)), ask())  # keys cached
    app_check_keys.stop()
    try:
        response = chat(
            guarded_server,
            Bearer(id_token(google_certs), app_check_keys.mint(PROJECT_ID)),
            ask(model=CONSUME_MODEL),
        )
    finally:
        app_check_keys.start()
    assert response.status_code == 503, response.text
    assert "App Check" in response.json()["error"]["message"]


def test_model_list_needs_app_check_when_enforced(guarded_server, google_certs, app_check_keys) -> None:
    auth = {"Authorization": f"Bearer {id_token(google_certs)}"}
    assert_refused(httpx.get(guarded_server.url + "/v1/models", headers=auth, timeout=30), "app_check_missing")
    allowed = httpx.get(
        guarded_server.url + "/v1/models",
        headers={**auth, APP_CHECK_HEADER: app_check_keys.mint(PROJECT_ID)},
        timeout=30,
    )
    assert allowed.status_code == 200
    marked = [m["id"] for m in allowed.json()["data"] if m.get("limited_use_app_check")]
    assert marked == [CONSUME_MODEL]


def test_no_app_check_token_reaches_the_logs(guarded_server, google_certs, app_check_keys) -> None:
    tokens = [app_check_keys.mint(PROJECT_ID), app_check_keys.mint(PROJECT_ID, key=app_check_keys.other_key)]
    for token in tokens:
        chat(guarded_server, Bearer(id_token(google_certs), token), ask())
    logs = guarded_server.logs()
    assert "app_check_invalid" in logs
    assert not any(token in logs or token.split(".")[2] in logs for token in tokens)


# --- monitor and off ----------------------------------------------------------------------------


def _lines(server: FunctionServer, message: str) -> list[dict[str, Any]]:
    return [line for line in server.log_lines() if line["message"] == message]


def test_monitor_serves_a_call_without_a_token_and_logs_app_check_missing(monitor_server, member) -> None:
    user: User = member()
    before = len(_lines(monitor_server, "app_check_missing"))
    assert chat(monitor_server, user, ask()).status_code == 200
    assert len(_lines(monitor_server, "app_check_missing")) == before + 1


def test_monitor_serves_an_invalid_token_and_logs_app_check_invalid(monitor_server, member, app_check_keys) -> None:
    user: User = member()
    before = len(_lines(monitor_server, "app_check_invalid"))
    forged = app_check_keys.mint(PROJECT_ID, key=app_check_keys.other_key)
    assert chat(monitor_server, Bearer(user.token, forged), ask()).status_code == 200
    logged = _lines(monitor_server, "app_check_invalid")[before:]
    assert [(line["mode"], line["error_class"]) for line in logged] == [("monitor", "InvalidSignatureError")]


def test_monitor_serves_a_valid_token_without_logging(monitor_server, member, app_check_keys) -> None:
    user: User = member()
    before = len(monitor_server.log_lines())
    assert chat(monitor_server, Bearer(user.token, app_check_keys.mint(PROJECT_ID)), ask()).status_code == 200
    assert not [line for line in monitor_server.log_lines()[before:] if line["message"].startswith("app_check")]


def test_off_ignores_the_app_check_header(chat_server, user: User) -> None:
    assert chat(chat_server, user, ask()).status_code == 200
    assert chat(chat_server, Bearer(user.token, "not-a-token"), ask()).status_code == 200
    assert not [line for line in chat_server.log_lines() if line["message"].startswith("app_check")]
