"""Who may call: Firebase ID tokens verified by firebase-admin, on the emulator and production paths."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from standins.google_certs import FakeGoogleCerts, unsigned_token
from standins.processes import ROOT, VENV_BIN, FunctionServer, source_env
from tests.conftest import PROJECT_ID, User
from tests.support.api import CHAT, Bearer, chat

BODY = {"messages": [{"role": "user", "content": "hello"}]}


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"


# --- production path: RS256 tokens checked against (our own) Google certificates -------------


def test_valid_signed_token_is_accepted(prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts) -> None:
    assert chat(prod_auth_server, Bearer(google_certs.mint(PROJECT_ID, "signed-user")), BODY).status_code == 200


# Every attack is refused by the verifier in process (tests/unit/test_token_checks.py); through
# the server, one.
@pytest.mark.parametrize(
    "attack",
    [
        "wrong_key",
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
    assert_401(chat(prod_auth_server, Bearer(token), BODY))


def test_emulator_tokens_are_refused_on_the_production_path(prod_auth_server: FunctionServer, user: User) -> None:
    assert_401(chat(prod_auth_server, user, BODY))


# --- emulator path ------------------------------------------------------------------------


def test_emulator_token_is_accepted(chat_server: FunctionServer, user: User) -> None:
    assert chat(chat_server, user, BODY).status_code == 200


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
    assert chat(revocation_server, user, BODY).status_code == 200
    auth_emulator.admin("POST", "accounts:update", {"localId": user.uid, "validSince": str(int(time.time()) + 1)})
    assert_401(chat(revocation_server, user, BODY))


def test_disabled_user_is_401_when_revocation_is_checked(
    revocation_server: FunctionServer, auth_emulator, user: User
) -> None:
    auth_emulator.admin("POST", "accounts:update", {"localId": user.uid, "disableUser": True})
    assert_401(chat(revocation_server, user, BODY))


def test_deleted_user_is_401_when_revocation_is_checked(
    revocation_server: FunctionServer, auth_emulator, user: User
) -> None:
    auth_emulator.admin("POST", "accounts:delete", {"localId": user.uid})
    assert_401(chat(revocation_server, user, BODY))


# --- anonymous use: an explicit local switch only -------------------------------------------


def test_anonymous_switch_serves_without_a_token_locally(function_server, fake_lago) -> None:
    server = function_server(ALLOW_ANONYMOUS="true")
    response = chat(server, None, BODY)
    assert response.status_code == 200
    assert fake_lago.events("anonymous")[-1]["transaction_id"] == response.json()["id"]


def exits_at_start(env: dict[str, str]) -> str:
    """Start functions-framework with ``env``; it must exit. Its output."""
    result = subprocess.run(
        [str(VENV_BIN / "functions-framework"), "--source", "functions/main.py", "--target", "chat", "--port", "0"],
        cwd=ROOT,
        env=source_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_anonymous_switch_refuses_to_start_on_a_deployed_instance(base_env: dict[str, str]) -> None:
    assert "ALLOW_ANONYMOUS" in exits_at_start({**base_env, "ALLOW_ANONYMOUS": "true", "K_SERVICE": "chat"})


def test_deployed_instance_refuses_to_start_with_an_emulator_host(base_env: dict[str, str]) -> None:
    # With FIREBASE_AUTH_EMULATOR_HOST, firebase-admin accepts unsigned tokens for any uid.
    output = exits_at_start({**base_env, "K_SERVICE": "chat", "SECRETS": ""})
    assert "FIREBASE_AUTH_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST must not be set on a deployed instance" in output


def test_functions_emulator_flag_alone_does_not_make_an_instance_local(base_env: dict[str, str]) -> None:
    env = {**base_env, "K_SERVICE": "chat", "FUNCTIONS_EMULATOR": "true", "SECRETS": ""}
    env["FIREBASE_AUTH_EMULATOR_HOST"] = "auth.example.com:9099"  # not this machine: not the emulator
    assert "must not be set on a deployed instance" in exits_at_start(env)


@pytest.fixture(scope="module")
def deployed_server(function_server, google_certs: FakeGoogleCerts, tmp_path_factory) -> FunctionServer:
    """K_SERVICE set, no emulator, production tokens; Lago's key missing and nothing to read it from."""
    key_file = tmp_path_factory.mktemp("adc") / "service-account.json"
    key_file.write_text(json.dumps(google_certs.service_account_key(PROJECT_ID)))
    return function_server(
        K_SERVICE="chat",
        CHAT_APP_CHECK="off",  # enforced by default when deployed; billing is what is under test
        GOOGLE_APPLICATION_CREDENTIALS=str(key_file),  # a deployed instance's default credentials
        SECRETS="",
        LAGO_API_KEY=None,
        FIREBASE_AUTH_EMULATOR_HOST=None,
        FIRESTORE_EMULATOR_HOST=None,
        GCE_METADATA_HOST="127.0.0.1:9",  # google-auth's probes stay on this machine
        GCE_METADATA_IP="127.0.0.1:9",
        TEST_ID_TOKEN_CERT_URI=google_certs.url,
        PYTHONPATH=str(ROOT / "tests" / "support" / "cert_override"),
    )


def test_deployed_instance_without_billing_refuses_chat_by_default(
    deployed_server: FunctionServer, google_certs: FakeGoogleCerts
) -> None:
    response = chat(deployed_server, Bearer(google_certs.mint(PROJECT_ID, "deployed-user")), BODY)
    assert response.status_code == 503, "before: served 200, unbilled, for the instance's whole life"
    assert response.json()["error"]["message"] == "Chat is unavailable: billing is not working on this instance."
    messages = [line["message"] for line in deployed_server.log_lines()]
    assert "lago_logging_disabled" in messages and "billing_not_required" not in messages
