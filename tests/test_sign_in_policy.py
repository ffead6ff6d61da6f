"""The sign-in policy on the real server: which Firebase identities may chat (Auth emulator users
and signed tokens on the production path), and the smaller budget of new accounts."""

from __future__ import annotations

from typing import Any

import httpx

from standins.app_check_keys import FakeAppCheck
from standins.google_certs import FakeGoogleCerts
from standins.processes import AuthEmulator, FunctionServer
from tests.conftest import PRICED_MODELS, PROJECT_ID, SIGN_IN_POLICY_ENV, User
from tests.support.api import Bearer, ask, chat
from tests.test_app_check import id_token


def assert_forbidden(response: httpx.Response, code: str, words: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", code)
    assert words in error["message"]


def anonymous_token(auth_emulator: AuthEmulator) -> str:
    response = httpx.post(
        f"http://{auth_emulator.host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key",
        json={"returnSecureToken": True},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["idToken"])


# --- Auth emulator users --------------------------------------------------------------------------


def test_anonymous_sign_in_is_refused_when_not_an_allowed_provider(monitor_server, auth_emulator) -> None:
    response = chat(monitor_server, Bearer(anonymous_token(auth_emulator)), ask())
    assert_forbidden(response, "sign_in_provider_not_allowed", "Guest (anonymous) sign-ins cannot chat")


def test_unverified_email_is_refused_in_words(monitor_server, member) -> None:
    response = chat(monitor_server, member(verified=False), ask())
    assert_forbidden(response, "email_not_verified", "Verify your email address")


def test_model_list_applies_the_sign_in_policy_too(monitor_server, member) -> None:
    headers = {"Authorization": f"Bearer {member(verified=False).token}"}
    response = httpx.get(monitor_server.url + "/v1/models", headers=headers, timeout=30)
    assert_forbidden(response, "email_not_verified", "Verify your email address")


def test_usage_applies_the_sign_in_policy_and_subscribes_no_one_it_refuses(function_server, member, fake_lago) -> None:
    # Reading usage subscribes a new user in Lago (LAGO_PLAN_CODE): only one who may chat.
    usage = function_server(target="usage", LAGO_PLAN_CODE="plan", CHAT_MODELS=PRICED_MODELS, **SIGN_IN_POLICY_ENV)
    refused: User = member(verified=False)
    response = httpx.get(usage.url + "/", headers=refused.headers, timeout=30)
    assert_forbidden(response, "email_not_verified", "Verify your email address")
    assert refused.uid not in fake_lago.customers
    served: User = member(age_days=31)
    assert httpx.get(usage.url + "/", headers=served.headers, timeout=30).status_code == 200
    assert fake_lago.subscriptions[served.uid]["plan_code"] == "plan"


def test_verified_account_past_the_new_account_period_is_served(monitor_server, member) -> None:
    assert chat(monitor_server, member(age_days=31), ask()).status_code == 200


def test_new_account_gets_the_new_account_budget(monitor_server, member, fake_lago) -> None:
    user: User = member(age_days=29)  # CHAT_NEW_ACCOUNT_BUDGET_CENTS=0: nothing until day 30
    response = chat(monitor_server, user, ask())
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("budget_exceeded", "insufficient_quota")
    assert "new accounts" in error["message"]
    assert fake_lago.events(user.uid) == []


# --- production token path: signed claims ----------------------------------------------------------


def signed_chat(server: FunctionServer, certs: FakeGoogleCerts, keys: FakeAppCheck, **claims: Any) -> httpx.Response:
    return chat(server, Bearer(id_token(certs, **claims), keys.mint(PROJECT_ID)), ask())


def test_signed_unverified_email_is_refused(guarded_server, google_certs, app_check_keys) -> None:
    response = signed_chat(guarded_server, google_certs, app_check_keys, email_verified=False)
    assert_forbidden(response, "email_not_verified", "Verify your email address")


def test_signed_token_without_an_email_is_refused_when_a_verified_email_is_required(
    guarded_server, google_certs, app_check_keys
) -> None:
    token = google_certs.mint(
        PROJECT_ID, "phone-user", auth_time=0, firebase={"identities": {}, "sign_in_provider": "password"}
    )
    assert_forbidden(
        chat(guarded_server, Bearer(token, app_check_keys.mint(PROJECT_ID)), ask()), "email_not_verified", "Verify"
    )


def test_signed_sign_in_with_an_unlisted_provider_is_refused(guarded_server, google_certs, app_check_keys) -> None:
    response = signed_chat(
        guarded_server, google_certs, app_check_keys, firebase={"identities": {}, "sign_in_provider": "phone"}
    )
    assert_forbidden(response, "sign_in_provider_not_allowed", "sign in with one of: password, google.com")


def test_signed_anonymous_sign_in_is_refused(guarded_server, google_certs, app_check_keys) -> None:
    response = signed_chat(
        guarded_server, google_certs, app_check_keys, firebase={"identities": {}, "sign_in_provider": "anonymous"}
    )
    assert_forbidden(response, "sign_in_provider_not_allowed", "Guest (anonymous)")


def test_signed_google_sign_in_with_a_verified_email_is_served(guarded_server, google_certs, app_check_keys) -> None:
    response = signed_chat(
        guarded_server, google_certs, app_check_keys, firebase={"identities": {}, "sign_in_provider": "google.com"}
    )
    assert response.status_code == 200, response.text
