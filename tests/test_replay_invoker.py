"""Only the one allowed service account may run ``replay_billing``: its Google-signed OIDC token
is checked in code (``google.oauth2.id_token``), against certificates of our own served as
Google's, so a misconfigured IAM binding is not the only wall."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from standins.google_certs import FakeGoogleCerts, unsigned_token
from standins.processes import ROOT, FunctionServer

INVOKER = "replay-billing@demo-chat-tests.iam.gserviceaccount.com"
AUDIENCE = "https://europe-west1-demo-chat-tests.cloudfunctions.net/replay_billing"


@pytest.fixture(scope="module")
def guarded_replay(function_server, google_certs: FakeGoogleCerts) -> FunctionServer:
    return function_server(
        target="replay_billing",
        REPLAY_AUDIENCE=AUDIENCE,
        REPLAY_INVOKER_EMAIL=INVOKER,
        TEST_OAUTH2_CERT_URI=google_certs.url,
        PYTHONPATH=str(ROOT / "tests" / "support" / "cert_override"),
    )


def oidc(certs: FakeGoogleCerts, **overrides: Any) -> str:
    """An OIDC token as Google issues it to a service account (Cloud Scheduler's ``oidcToken``)."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": INVOKER,
        "email_verified": True,
        "iat": now - 5,
        "exp": now + 3600,
        **overrides,
    }
    return certs.mint("unused", "unused", **claims)


def replay(server: FunctionServer, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.url + "/", headers=headers, timeout=60)


def refusals(server: FunctionServer) -> int:
    return sum(line["message"] == "replay_invoker_refused" for line in server.log_lines())


def test_allowed_service_account_runs_the_replay(guarded_replay: FunctionServer, google_certs: FakeGoogleCerts) -> None:
    before = refusals(guarded_replay)
    response = replay(guarded_replay, oidc(google_certs))
    assert refusals(guarded_replay) == before
    # Past the check the replay runs. On a loaded machine Firestore's emulator can still fail the
    # run: that 503 names the outbox, which is not a refusal of the caller.
    if response.status_code != 200:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["message"].startswith("The billing outbox failed"), response.text
    else:
        assert "delivered" in response.json() and "remaining" in response.json()


@pytest.mark.parametrize(
    "attack",
    ["none", "garbled", "wrong_audience", "expired", "wrong_issuer", "wrong_key", "alg_none", "firebase_id_token"],
)
def test_bad_oidc_tokens_are_401(guarded_replay: FunctionServer, google_certs: FakeGoogleCerts, attack: str) -> None:
    tokens = {
        "none": lambda: None,
        "garbled": lambda: "not.a.token",
        "wrong_audience": lambda: oidc(google_certs, aud="https://elsewhere.example/replay_billing"),
        "expired": lambda: oidc(google_certs, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "wrong_issuer": lambda: oidc(google_certs, iss="https://evil.example"),
        "wrong_key": lambda: google_certs.mint("unused", "unused", key=google_certs.other_key, aud=AUDIENCE),
        "alg_none": lambda: unsigned_token({"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": INVOKER}),
        "firebase_id_token": lambda: google_certs.mint("demo-chat-tests", "some-user"),
    }
    response = replay(guarded_replay, tokens[attack]())
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "someone-else@demo-chat-tests.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"email": None},
    ],
)
def test_other_accounts_are_403(guarded_replay: FunctionServer, google_certs: FakeGoogleCerts, claims: dict) -> None:
    response = replay(guarded_replay, oidc(google_certs, **claims))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


def test_deployed_replay_without_an_allowed_invoker_refuses_to_run() -> None:
    from shared.errors import ApiError
    from shared.invoker import verify_invoker
    from shared.settings import Settings

    settings = Settings.from_env({"K_SERVICE": "replay_billing", "GOOGLE_CLOUD_PROJECT": "p"})
    with pytest.raises(ApiError) as refused:
        verify_invoker("Bearer anything", settings)
    assert refused.value.status == 503
