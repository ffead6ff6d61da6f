"""Forged, expired and misaddressed tokens, refused by the product's own checks (``TokenVerifier``
for Firebase ID tokens on the production path, ``AppCheckGate`` for App Check tokens) with real
firebase-admin, in process: its key URLs point at the stand-ins in this process (as
tests/support/cert_override does for the servers). The same attacks through the running server,
one of each kind: tests/test_auth.py and tests/test_app_check.py."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import firebase_admin
import firebase_admin._token_gen
import pytest
from firebase_admin import app_check
from google.auth.credentials import AnonymousCredentials

from shared.app_check import AppCheckGate
from shared.auth import TokenVerifier
from shared.errors import ApiError, ErrorCode
from shared.settings import AppCheckSettings
from standins.app_check_keys import PROJECT_NUMBER, FakeAppCheck
from standins.google_certs import FakeGoogleCerts, unsigned_token

PROJECT_ID = "demo-chat-tests"  # the stand-ins mint for it; tests/conftest.py's
_apps = itertools.count()


def _tampered(token: str, **changes: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def refusal(check: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as raised:
        check()
    return raised.value


# --- Firebase ID tokens on the production path (was test_auth.py) ------------------------------


@pytest.fixture
def production_verifier(google_certs: FakeGoogleCerts, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenVerifier]:
    """Signatures checked against ``google_certs``, as a deployed instance checks Google's."""
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setattr(firebase_admin._token_gen, "ID_TOKEN_CERT_URI", google_certs.url)
    verifier = TokenVerifier(PROJECT_ID, check_revoked=False, allow_anonymous=False, deployed=False)
    yield verifier
    if verifier._app is not None:
        firebase_admin.delete_app(verifier._app)


def test_a_signed_token_names_its_caller(production_verifier: TokenVerifier, google_certs: FakeGoogleCerts) -> None:
    caller = production_verifier.verify_authorization(f"Bearer {google_certs.mint(PROJECT_ID, 'signed-user')}")
    assert caller.uid == "signed-user"


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
    production_verifier: TokenVerifier, google_certs: FakeGoogleCerts, attack: str
) -> None:
    mint = google_certs.mint
    tokens = {
        "tampered": lambda: _tampered(mint(PROJECT_ID, "u1"), sub="admin", user_id="admin"),
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
    error = refusal(lambda: production_verifier.verify_authorization(f"Bearer {tokens[attack]()}"))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHENTICATED)


# One header with more than one token, or a token under another scheme (was test_abuse.py, whose
# end-to-end cases keep the two repeated headers).
@pytest.mark.parametrize("shape", ["two_tokens_one_header", "comma_separated", "basic_scheme", "token_without_scheme"])
def test_ambiguous_authorization_is_401_on_the_production_path(
    production_verifier: TokenVerifier, google_certs: FakeGoogleCerts, shape: str
) -> None:
    good = google_certs.mint(PROJECT_ID, f"attack-{shape}")
    header = {
        "two_tokens_one_header": f"Bearer {good} {good}",
        "comma_separated": f"Bearer {good}, Bearer {good}",
        "basic_scheme": f"Basic {good}",
        "token_without_scheme": good,
    }[shape]
    error = refusal(lambda: production_verifier.verify_authorization(header))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHENTICATED)


# --- App Check tokens (was test_app_check.py) -------------------------------------------------


@pytest.fixture
def enforcing_gate(app_check_keys: FakeAppCheck, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppCheckGate]:
    """``CHAT_APP_CHECK=enforce`` against ``app_check_keys``' JWKS, as the guarded server has it."""
    monkeypatch.setattr(app_check._AppCheckService, "_JWKS_URL", app_check_keys.jwks_url)
    monkeypatch.setattr(app_check._AppCheckService, "_VERIFY_URL_FORMAT", app_check_keys.verify_url_format)

    class Anonymous(firebase_admin.credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> AnonymousCredentials:
            return AnonymousCredentials()

    app = firebase_admin.initialize_app(Anonymous(), {"projectId": PROJECT_ID}, name=f"app-check-{next(_apps)}")
    yield AppCheckGate(AppCheckSettings(mode="enforce"), lambda: app)
    firebase_admin.delete_app(app)


def test_a_valid_app_check_token_is_let_through(enforcing_gate: AppCheckGate, app_check_keys: FakeAppCheck) -> None:
    enforcing_gate.check(app_check_keys.mint(PROJECT_ID))


@pytest.mark.parametrize(
    "attack",
    [
        "forged_key",
        "tampered",
        "expired",
        "other_project",
        "wrong_issuer",
        "unknown_kid",
        "no_kid",
        "no_typ_header",
        "alg_none",
        "garbage",
        "id_token_instead",
    ],
)
def test_enforce_refuses_invalid_app_check_tokens(
    enforcing_gate: AppCheckGate, google_certs: FakeGoogleCerts, app_check_keys: FakeAppCheck, attack: str
) -> None:
    mint = app_check_keys.mint
    now = int(time.time())
    tokens: dict[str, Callable[[], Any]] = {
        "forged_key": lambda: mint(PROJECT_ID, key=app_check_keys.other_key),
        "tampered": lambda: _tampered(mint(PROJECT_ID), sub="1:999:web:attacker"),
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
        "id_token_instead": lambda: google_certs.mint(PROJECT_ID, "app-user"),
    }
    error = refusal(lambda: enforcing_gate.check(tokens[attack]()))
    assert (error.status, error.code) == (401, ErrorCode.APP_CHECK_INVALID)


def test_app_check_keys_are_fetched_once_not_per_call(
    enforcing_gate: AppCheckGate, app_check_keys: FakeAppCheck
) -> None:
    enforcing_gate.check(app_check_keys.mint(PROJECT_ID))
    before = app_check_keys.jwks_fetches
    for _ in range(5):
        enforcing_gate.check(app_check_keys.mint(PROJECT_ID))
    assert app_check_keys.jwks_fetches == before
