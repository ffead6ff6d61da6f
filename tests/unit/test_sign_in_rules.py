"""The App Check and sign-in settings, the App Check modes and the sign-in policy's rules, without
servers (fast). Token verification itself runs on the real server: tests/test_app_check.py."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
from google.auth.credentials import AnonymousCredentials

from shared.app_check import AppCheckGate
from shared.auth import Caller
from shared.budget import _limit
from shared.errors import ApiError
from shared.settings import AppCheckSettings, Settings, SettingsError, SignInSettings
from shared.sign_in_policy import SignInPolicy
from standins.http_server import Request, StandInServer

DEPLOYED = {"K_SERVICE": "chat"}
DAY = 86400
_apps = itertools.count()


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def caller(provider: str = "password", **claims: Any) -> Caller:
    base = {"email": "a@example.com", "email_verified": True, "firebase": {"sign_in_provider": provider}}
    return Caller("uid-1", {**base, **claims})


def test_app_check_is_enforced_by_default_when_deployed_and_off_locally() -> None:
    assert settings(**DEPLOYED).app_check.mode == "enforce"
    assert settings().app_check.mode == "off"


def test_anonymous_sign_in_is_refused_by_default_when_deployed_and_allowed_locally() -> None:
    assert settings(**DEPLOYED).sign_in.anonymous_allowed is False
    assert settings().sign_in.anonymous_allowed is True


def test_listing_anonymous_as_a_provider_allows_it_when_deployed() -> None:
    sign_in = settings(**DEPLOYED, CHAT_SIGN_IN_PROVIDERS="password, anonymous").sign_in
    assert (sign_in.providers, sign_in.anonymous_allowed) == (("password", "anonymous"), True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CHAT_APP_CHECK": "strict"}, "CHAT_APP_CHECK must be one of off, monitor, enforce"),
        ({"CHAT_APP_CHECK": "enforce", "CHAT_APP_CHECK_CONSUME_MODELS": "openai/o1"}, "not in CHAT_MODELS: openai/o1"),
        ({"CHAT_APP_CHECK": "off", "CHAT_APP_CHECK_CONSUME_MODELS": "local/demo"}, "needs CHAT_APP_CHECK=monitor"),
        ({"CHAT_NEW_ACCOUNT_BUDGET_CENTS": "-1"}, "CHAT_NEW_ACCOUNT_BUDGET_CENTS must be at least 0"),
        ({"CHAT_NEW_ACCOUNT_DAYS": "soon"}, "CHAT_NEW_ACCOUNT_DAYS must be a number"),
        ({"CHAT_REQUIRE_VERIFIED_EMAIL": "maybe"}, "CHAT_REQUIRE_VERIFIED_EMAIL must be true or false"),
    ],
)
def test_malformed_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def _no_lookup() -> firebase_admin.App:
    raise AssertionError("the account's creation time was looked up")


def policy(firebase_app: Any = _no_lookup, **fields: Any) -> SignInPolicy:
    return SignInPolicy(SignInSettings(**fields), firebase_app)


@pytest.mark.parametrize(
    ("fields", "who", "code"),
    [
        ({"anonymous_allowed": False}, caller("anonymous"), "sign_in_provider_not_allowed"),
        ({"providers": ("google.com",)}, caller("password"), "sign_in_provider_not_allowed"),
        ({"providers": ("password",)}, Caller("uid-1", {}), "sign_in_provider_not_allowed"),
        ({"require_verified_email": True}, caller(email_verified=False), "email_not_verified"),
        ({"require_verified_email": True}, caller(email_verified="true"), "email_not_verified"),
    ],
)
def test_policy_refuses_with_a_403_that_names_the_rule(fields: dict[str, Any], who: Caller, code: str) -> None:
    with pytest.raises(ApiError) as raised:
        policy(**fields).check(who)
    assert (raised.value.status, raised.value.code.code) == (403, code)


@pytest.mark.parametrize(
    "fields",
    [{}, {"providers": ("password",)}, {"require_verified_email": True}, {"anonymous_allowed": False}],
)
def test_policy_lets_a_verified_password_user_through(fields: dict[str, Any]) -> None:
    policy(**fields).check(caller())


def test_no_new_account_budget_means_no_cap_and_no_lookup() -> None:
    assert policy().budget_cap_cents(caller(auth_time=int(time.time()))) is None


def test_an_old_sign_in_proves_an_old_account_without_a_lookup() -> None:
    old = caller(auth_time=int(time.time()) - 31 * DAY)
    assert policy(new_account_budget_cents=100, new_account_days=30).budget_cap_cents(old) is None


class _Accounts:
    """Firebase Auth's ``accounts:lookup`` (the call behind ``get_user``), counting calls."""

    def __init__(self, created_ms: int) -> None:
        self.created_ms, self.lookups = created_ms, 0
        self.server = StandInServer(
            [("POST", r"/identitytoolkit.googleapis.com/v1/projects/(?P<project>[^/]+)/accounts:lookup", self._lookup)]
        ).start()

    def _lookup(self, request: Request) -> None:
        self.lookups += 1
        uid = request.json()["localId"][0]
        request.send_json(200, {"users": [{"localId": uid, "createdAt": str(self.created_ms)}]})


@contextlib.contextmanager
def _app(monkeypatch: pytest.MonkeyPatch, host: str) -> Iterator[firebase_admin.App]:
    """A firebase-admin app whose Auth API is at ``host`` (as the emulator variable points it)."""
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", host)

    class Anonymous(firebase_admin.credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> AnonymousCredentials:
            return AnonymousCredentials()

    app = firebase_admin.initialize_app(Anonymous(), {"projectId": "demo-rules"}, name=f"rules-{next(_apps)}")
    try:
        yield app
    finally:
        firebase_admin.delete_app(app)


@pytest.fixture
def recent_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Accounts, firebase_admin.App]]:
    accounts = _Accounts(int((time.time() - 2 * DAY) * 1000))
    with _app(monkeypatch, accounts.server.url.removeprefix("http://")) as app:
        yield accounts, app
    accounts.server.stop()


def test_a_recent_account_gets_the_cap_and_its_creation_time_is_read_once(recent_accounts) -> None:
    accounts, app = recent_accounts
    rules = policy(lambda: app, new_account_budget_cents=100, new_account_days=30)
    recent = caller(auth_time=int(time.time()))
    assert [rules.budget_cap_cents(recent) for _ in range(3)] == [100, 100, 100]
    assert accounts.lookups == 1


def test_an_account_whose_creation_time_cannot_be_read_counts_as_new(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = StandInServer([]).start()
    host = closed.url.removeprefix("http://")
    closed.stop()  # nothing listens there now
    with _app(monkeypatch, host) as app:
        rules = policy(lambda: app, new_account_budget_cents=100, new_account_days=30)
        assert rules.budget_cap_cents(caller(auth_time=int(time.time()))) == 100


@pytest.mark.parametrize(
    ("limit", "cap", "expected"), [(None, None, None), (500, None, 500), (None, 50, 50), (500, 50, 50), (20, 50, 20)]
)
def test_the_new_account_cap_only_ever_lowers_the_limit(limit: int | None, cap: int | None, expected: int) -> None:
    assert _limit(limit, cap) == expected


def test_app_check_off_reads_nothing() -> None:
    AppCheckGate(AppCheckSettings(mode="off"), _no_lookup).check("not-a-token", "local/demo")
    AppCheckGate(AppCheckSettings(mode="off"), _no_lookup).check(None)


def test_app_check_monitor_serves_a_missing_token_and_enforce_refuses_it() -> None:
    AppCheckGate(AppCheckSettings(mode="monitor"), _no_lookup).check(None)
    with pytest.raises(ApiError) as raised:
        AppCheckGate(AppCheckSettings(mode="enforce"), _no_lookup).check("  ")
    assert (raised.value.status, raised.value.code.code) == (401, "app_check_missing")
