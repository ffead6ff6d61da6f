"""Session fixtures: the real servers start once and every test drives them over HTTP.

- ``fake_llm``: an OpenAI-wire provider; ``fake_lago``: Lago's events API; ``google_certs``:
  Google's token certificates with keys of our own (stand-ins on 127.0.0.1, in this process).
- ``auth_emulator`` (firebase-tools) and ``firestore_emulator`` (gcloud): real emulators.
- ``chat_server``: ``functions-framework`` serving ``functions/main.py`` wired to all of them.
  ``function_server(**env)`` starts another one with different settings (slower: a cold start).
- ``price_servers``: a 1 cent budget and a model LiteLLM's cost map lacks (``UNPRICED_MODEL``),
  refused at cold start (``.unpriced``) and priced by ``CHAT_MODEL_PRICES`` (``.priced``).
- ``app_check_keys``: App Check's JWKS and replay API with keys of our own; ``guarded_server``
  (App Check enforced, production token path) and ``monitor_server`` (App Check monitored,
  Auth emulator) both apply the sign-in policy of ``SIGN_IN_POLICY_ENV``.
- ``fake_anthropic`` (Messages API), ``fake_gemini`` (AI Studio and Vertex AI) and
  ``google_oauth`` (the token endpoint Vertex AI's service-account credential uses): providers
  on their own wire; ``provider_env`` points a function server at them, ``provider_server`` is
  one serving ``PROVIDER_MODELS`` (a cold start per module that uses it).
"""

from __future__ import annotations

import itertools
import json
import os

# Before anything imports LiteLLM: its bundled cost map, never a fetch from the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from google.cloud import firestore

from standins.anthropic_llm import API_KEY as ANTHROPIC_KEY
from standins.anthropic_llm import FakeAnthropic
from standins.app_check_keys import FakeAppCheck
from standins.gemini_llm import API_KEY as GEMINI_KEY
from standins.gemini_llm import FakeGemini
from standins.google_certs import FakeGoogleCerts
from standins.google_oauth import FakeGoogleOAuth
from standins.lago import API_KEY as LAGO_KEY
from standins.lago import FakeLago
from standins.openai_llm import FakeOpenAI
from standins.processes import ROOT, AuthEmulator, FirestoreEmulator, FunctionServer
from tests.support.api import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL"]  # re-exported: modules import it from here
pytest_plugins = ["tests.faults_report"]  # the fault suite's summary line

PROJECT_ID = "demo-chat-tests"
UNPRICED_MODEL = "openai/not-in-cost-map"  # in every server's CHAT_MODELS, not in LiteLLM's cost map
MODEL_PRICE = {"input_cost_per_token": 1e-4, "output_cost_per_token": 2e-4}  # "hello" costs ~0.2 cents
OPENAI_KEY = "sk-test-provider-secret-do-not-log"
EVENT_CODE = "llm_tokens"
_counter = itertools.count()


def _quiet_litellm_teardown(unraisable: sys.UnraisableHookArgs) -> None:
    # LiteLLM's aiohttp transport fails in __del__ at interpreter exit (a LiteLLM bug); the tests
    # that import LiteLLM in this process would end every run with that traceback.
    if "LiteLLMAiohttpTransport" in repr(unraisable.object):
        return
    sys.__unraisablehook__(unraisable)


sys.unraisablehook = _quiet_litellm_teardown


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.release.set()
    server.stop()


@pytest.fixture(scope="session")
def fake_lago() -> Iterator[FakeLago]:
    server = FakeLago().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _lago_plan_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fake_lago" in request.fixturenames:
        request.getfixturevalue("fake_lago").reset()


@pytest.fixture(scope="session")
def google_certs() -> FakeGoogleCerts:
    return FakeGoogleCerts().start()


@pytest.fixture(scope="session")
def auth_emulator() -> Iterator[AuthEmulator]:
    emulator = AuthEmulator(PROJECT_ID).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: FirestoreEmulator) -> Iterator[firestore.Client]:
    """A Firestore client of the emulator, for reading the billing outbox from the tests.

    The client finds the emulator through ``FIRESTORE_EMULATOR_HOST``; it is set for the session
    and restored at its end, so no test leaves the process environment changed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
        client = firestore.Client(project=PROJECT_ID)
        yield client
        client.close()


@pytest.fixture(scope="module")
def firestore_emulator_env(firestore_emulator: FirestoreEmulator) -> Iterator[None]:
    """``FIRESTORE_EMULATOR_HOST`` in this process for the module, restored after it: the
    library's own stores, made in the test process, find the emulator."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
        yield


@pytest.fixture(scope="session")
def base_env(
    fake_llm: FakeOpenAI, fake_lago: FakeLago, auth_emulator: AuthEmulator, firestore_emulator: FirestoreEmulator
) -> dict[str, str]:
    """The environment of a function server wired to every stand-in and emulator."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    return {
        **{key: os.environ[key] for key in keep if key in os.environ},
        "GOOGLE_CLOUD_PROJECT": PROJECT_ID,
        "FIREBASE_AUTH_EMULATOR_HOST": auth_emulator.host,
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "CHAT_MODELS": f"{DEFAULT_MODEL},local/demo,{UNPRICED_MODEL}",
        "OPENAI_API_BASE": fake_llm.base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "LAGO_API_BASE": fake_lago.url,
        "LAGO_API_KEY": LAGO_KEY,
        "LAGO_API_EVENT_CODE": EVENT_CODE,
        "LAGO_API_CHARGE_BY": "user_id",
        "LAGO_FLUSH_TIMEOUT_S": "1.5",
        "CHAT_LLM_TIMEOUT_S": "5",
        "CORS_ORIGINS": "http://localhost:5002,https://chat.example.com",
        "THREADS": "24",
        "PYTHONUNBUFFERED": "1",
    }


# Every function server started, and those the session's own fixtures keep for every module.
_started: list[FunctionServer] = []
_kept: set[int] = set()


@pytest.fixture(scope="session")
def function_server(base_env: dict[str, str]) -> Iterator[Callable[..., FunctionServer]]:
    """Start a function server with ``base_env`` changed by keyword arguments (None removes a key).

    A server stops when the module that started it ends, unless ``keep`` (session fixtures): some
    forty servers alive at once would crowd the machine's memory."""

    def start(target: str = "chat", wait: bool = True, keep: bool = False, **changes: str | None) -> FunctionServer:
        env = dict(base_env)
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        server = FunctionServer(env, target)
        _started.append(server)
        if keep:
            _kept.add(id(server))
        return server.start(wait=wait)

    yield start
    for server in _started:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _module_servers_stop_with_the_module() -> Iterator[None]:
    first = len(_started)
    yield
    for server in _started[first:]:
        if id(server) not in _kept:
            server.stop()


@pytest.fixture(scope="session")
def chat_server(function_server: Callable[..., FunctionServer]) -> FunctionServer:
    return function_server(keep=True)


@dataclass(frozen=True)
class PriceServers:
    unpriced: FunctionServer  # CHAT_BUDGET_CENTS=1 and UNPRICED_MODEL without a price: refuses
    priced: FunctionServer  # the same, with CHAT_MODEL_PRICES pricing UNPRICED_MODEL


@pytest.fixture(scope="session")
def price_servers(function_server: Callable[..., FunctionServer]) -> PriceServers:
    """Shared by the price tests and the fault suite's ``unpriced_model`` cell: two cold starts."""
    servers = PriceServers(
        unpriced=function_server(wait=False, keep=True, CHAT_BUDGET_CENTS="1"),
        priced=function_server(
            wait=False, keep=True, CHAT_BUDGET_CENTS="1", CHAT_MODEL_PRICES=json.dumps({UNPRICED_MODEL: MODEL_PRICE})
        ),
    )
    servers.unpriced.wait_ready()
    servers.priced.wait_ready()
    return servers


@pytest.fixture(scope="session")
def prod_auth_server(function_server: Callable[..., FunctionServer], google_certs: FakeGoogleCerts) -> FunctionServer:
    """A chat server on the production token path: signatures checked against ``google_certs``."""
    return function_server(
        keep=True,
        FIREBASE_AUTH_EMULATOR_HOST=None,
        TEST_ID_TOKEN_CERT_URI=google_certs.url,
        PYTHONPATH=str(ROOT / "tests" / "support" / "cert_override"),
    )


@pytest.fixture(scope="session")
def app_check_keys() -> Iterator[FakeAppCheck]:
    server = FakeAppCheck().start()
    yield server
    server.stop()


# Providers on their own wire, by real model names of LiteLLM's cost map.
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"
GEMINI_MODEL = "gemini/gemini-2.5-flash"
VERTEX_MODEL = "vertex_ai/gemini-2.5-flash"
LONG_CONTEXT_MODEL = "gemini/gemini-2.5-pro"  # its prompts past 200K tokens cost more per token
PROVIDER_MODELS = (ANTHROPIC_MODEL, GEMINI_MODEL, VERTEX_MODEL, LONG_CONTEXT_MODEL)
PROVIDER_MAX_BODY_BYTES = 2 * 1024 * 1024  # room for a prompt past Gemini's 200K-token tier
VERTEX_LOCATION = "us-central1"


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def google_oauth() -> Iterator[FakeGoogleOAuth]:
    server = FakeGoogleOAuth().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gemini(google_oauth: FakeGoogleOAuth) -> Iterator[FakeGemini]:
    server = FakeGemini(google_oauth).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def provider_env(
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    google_oauth: FakeGoogleOAuth,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """What a function server needs to call the providers' stand-ins, as LiteLLM reads it.

    Vertex AI has no key: LiteLLM asks google-auth for Application Default Credentials, here a
    service account's credential file (as on a laptop; deployed, the function's own account
    through the metadata server) whose ``token_uri`` is ``google_oauth``."""
    credential = tmp_path_factory.mktemp("vertex") / "service-account.json"
    credential.write_text(json.dumps(google_oauth.service_account(PROJECT_ID)))
    return {
        "ANTHROPIC_API_BASE": fake_anthropic.base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "GEMINI_API_BASE": fake_gemini.studio_base,
        "GEMINI_API_KEY": GEMINI_KEY,
        "VERTEXAI_API_BASE": fake_gemini.url,
        "VERTEXAI_PROJECT": PROJECT_ID,
        "VERTEXAI_LOCATION": VERTEX_LOCATION,
        "GOOGLE_APPLICATION_CREDENTIALS": str(credential),
    }


@pytest.fixture(scope="module")
def provider_server(function_server: Callable[..., FunctionServer], provider_env: dict[str, str]) -> FunctionServer:
    """A chat server whose models are ``PROVIDER_MODELS``, each through its provider's stand-in."""
    return function_server(
        CHAT_MODELS=",".join(PROVIDER_MODELS), CHAT_MAX_BODY_BYTES=str(PROVIDER_MAX_BODY_BYTES), **provider_env
    )


PRICED_MODELS = f"{DEFAULT_MODEL},local/demo"  # base_env's models less the unpriced one
CONSUME_MODEL = "local/demo"  # the "expensive" model whose App Check tokens are single-use
SIGN_IN_POLICY_ENV = {
    "CHAT_REQUIRE_VERIFIED_EMAIL": "true",
    "CHAT_SIGN_IN_PROVIDERS": "password,google.com",
    "CHAT_NEW_ACCOUNT_BUDGET_CENTS": "0",
    "CHAT_NEW_ACCOUNT_DAYS": "30",
}


def _app_check_env(keys: FakeAppCheck, mode: str) -> dict[str, str | None]:
    return {
        "CHAT_APP_CHECK": mode,
        "CHAT_APP_CHECK_CONSUME_MODELS": CONSUME_MODEL,
        "TEST_APP_CHECK_JWKS_URL": keys.jwks_url,
        "TEST_APP_CHECK_VERIFY_URL": keys.verify_url_format,
        "PYTHONPATH": str(ROOT / "tests" / "support" / "cert_override"),
        **SIGN_IN_POLICY_ENV,
        "CHAT_MODELS": PRICED_MODELS,  # a new-account budget needs every model priced
    }


@pytest.fixture(scope="session")
def guarded_server(
    function_server: Callable[..., FunctionServer], google_certs: FakeGoogleCerts, app_check_keys: FakeAppCheck
) -> FunctionServer:
    """App Check enforced and the sign-in policy, on the production ID-token path (signed tokens)."""
    return function_server(
        keep=True,
        FIREBASE_AUTH_EMULATOR_HOST=None,
        TEST_ID_TOKEN_CERT_URI=google_certs.url,
        **_app_check_env(app_check_keys, "enforce"),
    )


@pytest.fixture(scope="session")
def monitor_server(function_server: Callable[..., FunctionServer], app_check_keys: FakeAppCheck) -> FunctionServer:
    """App Check monitored and the sign-in policy, with Auth emulator users."""
    return function_server(keep=True, **_app_check_env(app_check_keys, "monitor"))


class User:
    def __init__(self, uid: str, token: str, email: str) -> None:
        self.uid, self.token, self.email = uid, token, email

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def new_user(auth_emulator: AuthEmulator) -> Callable[[], User]:
    """Sign up a fresh user in the Auth emulator (so each test's events are its own)."""

    def make() -> User:
        email = f"user{next(_counter)}-{uuid.uuid4().hex[:8]}@example.com"
        uid, token = auth_emulator.sign_up(email)
        return User(uid, token, email)

    return make


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    return new_user()


@pytest.fixture
def member(auth_emulator: AuthEmulator, new_user: Callable[[], User]) -> Callable[..., User]:
    """An Auth emulator user as the sign-in policy sees it: email verified or not, created days ago."""

    def make(*, verified: bool = True, age_days: float = 60) -> User:
        user = new_user()
        created_ms = int((time.time() - age_days * 86400) * 1000)
        auth_emulator.admin(
            "POST", "accounts:update", {"localId": user.uid, "emailVerified": verified, "createdAt": str(created_ms)}
        )
        user.token = auth_emulator.sign_in(user.email)
        return user

    return make


# The longest modules (about a minute or more each, measured) go first, so that under ``-n`` no
# worker is left with one of them while the other idles at the end.
_LONGEST_FIRST = [
    "test_faults",
    "test_browser",
    "test_abuse",
    "test_billing",
    "test_deploy",
    "test_provider_wire",
    "test_replay",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``scripts/test`` runs this tier on two workers (pytest-xdist, ``--dist loadfile``: a module
    runs whole on one worker, so its module fixtures start once); they take modules in this order."""
    rank = {module: index for index, module in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: modules stay whole
