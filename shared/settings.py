"""Settings: one typed, immutable object built from the environment once per instance."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .pricing.model_prices import ModelPrice, parse_model_prices

# end_user_id (LiteLLM's default) exists only under the LiteLLM Proxy: here it would bill the uid.
CHARGE_BY_CHOICES = ("user_id", "team_id")
APP_CHECK_MODES = ("off", "monitor", "enforce")
ANONYMOUS_PROVIDER = "anonymous"
DEFAULT_LOCAL_MODEL = "local/demo"
DEFAULT_MAX_BODY_BYTES = 256 * 1024


# Standard claims a user can set on their own account (profile updates, sign-in providers) or
# that name the user rather than a team: billing a team by one of them lets a member pick the payer.
USER_CHANGEABLE_CLAIMS = ("name", "email", "picture", "phone_number", "sub", "user_id", "firebase", "uid")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_local_emulator(env: Mapping[str, str]) -> bool:
    """Under the Firebase Functions emulator, which sets ``K_SERVICE`` like Cloud Run does.

    ``FUNCTIONS_EMULATOR=true`` alone proves nothing (anyone can set a variable on a deployed
    function). The emulator also points firebase-admin at the Auth emulator on this machine
    (firebase-tools' ``getEmulatorEnvs``); a deployed instance with that setting would verify
    tokens against a loopback address where nothing answers, so it fails closed.
    """
    if env.get("FUNCTIONS_EMULATOR", "").strip() != "true":
        return False
    auth_host = env.get("FIREBASE_AUTH_EMULATOR_HOST", "").strip()
    return auth_host.rpartition(":")[0] in _LOOPBACK_HOSTS


def is_deployed(env: Mapping[str, str]) -> bool:
    """On Cloud Functions (``K_SERVICE`` is set there), and not under the local emulator."""
    return bool(env.get("K_SERVICE", "").strip()) and not is_local_emulator(env)


def emulator_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """The ``*_EMULATOR_HOST`` variables that are set: with one, a client skips real checks."""
    return tuple(sorted(key for key, value in env.items() if key.endswith("_EMULATOR_HOST") and value.strip()))


class SettingsError(ValueError):
    """The environment holds a setting that cannot be used; every bad key is named."""


class RefusedToStart(SettingsError):
    """A setting that must stop the process rather than let it serve (even with 503s)."""


def cors_origins_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """``CORS_ORIGINS`` alone: a misconfigured instance still answers browsers with its 503."""
    return _EnvReader(env).csv("CORS_ORIGINS")


@dataclass(frozen=True, kw_only=True)
class LagoSettings:
    """Where and how usage events go. ``enabled`` is False when any required value is missing."""

    api_base: str = ""
    """``LAGO_API_BASE``: Lago's API root, e.g. ``https://api.getlago.com`` (no trailing slash)."""
    api_key: str = field(default="", repr=False)
    """``LAGO_API_KEY``: the Lago API key (a secret: never in a log or a repr)."""
    event_code: str = ""
    """``LAGO_API_EVENT_CODE``: the billable metric's code every usage event carries."""
    charge_by: str = "user_id"
    """``LAGO_API_CHARGE_BY``: who pays, ``user_id`` (the uid) or ``team_id`` (``team_claim``)."""
    team_claim: str = "team_id"
    """``LAGO_TEAM_CLAIM``: the verified token's claim that names the payer when charging by team."""
    flush_timeout_s: float = 3.0
    """``LAGO_FLUSH_TIMEOUT_S``: one request's billing deadline; what Lago has not taken by then
    goes to the outbox. 0.1 to 60."""
    plan_code: str = ""
    """``LAGO_PLAN_CODE``: provision a Lago customer and subscription to this plan on a payer's first
    call; empty: payers are provisioned elsewhere."""
    bills_cost: bool = False
    """``LAGO_BILLS_COST``: the Lago metric sums ``response_cost`` (billing at cost), so every
    allowlisted model must have a price, or its calls would be billed 0."""
    read_timeout_s: float = 1.5
    """``LAGO_READ_TIMEOUT_S``: the one deadline of a Lago read (usage, customer); no retries."""

    @property
    def missing(self) -> tuple[str, ...]:
        pairs = (
            ("LAGO_API_BASE", self.api_base),
            ("LAGO_API_KEY", self.api_key),
            ("LAGO_API_EVENT_CODE", self.event_code),
        )
        return tuple(name for name, value in pairs if not value)

    @property
    def enabled(self) -> bool:
        return not self.missing


@dataclass(frozen=True, kw_only=True)
class AppCheckSettings:
    """Firebase App Check: whether calls must come from the operator's own app."""

    mode: str = "off"
    """``off``: the header is ignored; ``monitor``: checked, failures logged and served;
    ``enforce``: a missing or invalid token is a 401. Default: enforce deployed, off locally."""
    consume_models: tuple[str, ...] = ()
    """Models whose calls need a limited-use token, consumed on use (replay protection): one App
    Check API call per request, so meant for the most expensive models only."""

    @property
    def checks(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True, kw_only=True)
class SignInSettings:
    """Which Firebase identities may chat, and the budget of accounts that are new."""

    require_verified_email: bool = False
    """Refuse (403) a token whose ``email_verified`` claim is not true."""
    providers: tuple[str, ...] | None = None
    """Allowed ``firebase.sign_in_provider`` values; None allows any (``anonymous_allowed`` aside)."""
    anonymous_allowed: bool = True
    """Anonymous sign-ins may chat: refused by default deployed, unless listed in the providers."""
    new_account_budget_cents: int | None = None
    """The budget limit of a payer whose account is younger than ``new_account_days``; off when None."""
    new_account_days: float = 30.0
    """How long an account counts as new, from its creation time in Firebase Auth."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the functions read from the environment, parsed and checked once."""

    chat_models: tuple[str, ...]
    """``CHAT_MODELS``: the allowlist of LiteLLM model names, comma-separated; the first is the
    default. Default ``local/demo``, the embedded offline model. An entry ``ID=MODEL`` gives the
    model a public id (``model_ids``)."""
    max_tokens: int
    """``CHAT_MAX_TOKENS``: the cap on a request's ``max_tokens`` / ``max_completion_tokens``
    (and the worst case a budget reserves when the request sets none). Default 4096."""
    max_body_bytes: int
    """``CHAT_MAX_BODY_BYTES``: the largest request body; past it, 413. Default 262144 (256 KiB)."""
    max_messages: int
    """``CHAT_MAX_MESSAGES``: the most messages one request may carry; past it, 400. Default 200."""
    cors_origins: tuple[str, ...]
    """``CORS_ORIGINS``: browser origins allowed to call, comma-separated (``*``: any). Default none."""
    project_id: str
    """``GOOGLE_CLOUD_PROJECT`` (else ``GCLOUD_PROJECT``): the Firebase project, the ID tokens'
    audience."""
    check_revoked: bool
    """``CHAT_CHECK_REVOKED``: also refuse revoked tokens and disabled users (one Auth API call per
    request). Default false."""
    allow_anonymous: bool
    """``ALLOW_ANONYMOUS``: local only, no token needed and every call is uid ``anonymous``; a
    deployed instance refuses to start with it. Default false."""
    deployed: bool
    """On Cloud Functions (``K_SERVICE`` set, ``FUNCTIONS_EMULATOR`` not ``true``): set by the
    platform, not by an operator."""
    llm_timeout_s: float
    """``CHAT_LLM_TIMEOUT_S``: the provider call's timeout; past it, 504. 0.1 to 3600, default 60."""
    lago: LagoSettings
    """Billing: the ``LAGO_*`` variables; see ``LagoSettings``."""
    outbox_enabled: bool
    """``BILLING_OUTBOX``: keep what Lago did not take in time in the Firestore outbox. Default true."""
    require_billing: bool
    """``CHAT_REQUIRE_BILLING``: answer chat with 503 rather than serve it unbilled when billing is
    off. True by default on a deployed instance; an explicit false is logged at WARNING on every
    cold start."""
    replay_batch_size: int
    """``BILLING_REPLAY_BATCH``: outbox events a replay run reads and claims at a time (a page)."""
    replay_budget_s: float
    """``BILLING_REPLAY_BUDGET_S``: how long one replay run keeps draining; keep it under the
    function's timeout, with a few seconds for the run's last writes."""
    budget_cents: int | None
    """``CHAT_BUDGET_CENTS``: each payer's limit for the billing period, in the cost's cents (Lago
    customer metadata ``chat_budget_cents`` overrides it per payer). Default none: no limit."""
    project_budget_cents: int | None = None
    """``CHAT_PROJECT_BUDGET_CENTS``: the project's limit per calendar month (UTC), all payers together."""
    rate_limit_rpm: int | None = None
    """``CHAT_RATE_LIMIT_RPM``: chat requests per minute per payer (and per uid in team mode); off when unset."""
    rate_limit_tpm: int | None = None
    """``CHAT_RATE_LIMIT_TPM``: tokens per minute (prompt + ``max_tokens``, as OpenAI counts), same scope."""
    max_concurrent: int | None = None
    """``CHAT_MAX_CONCURRENT``: chat requests in flight at once, same scope; off when unset."""
    usage_cache_s: float
    """``CHAT_USAGE_CACHE_S``: how long a payer's usage read from Lago is reused. 0 to 3600, default 10."""
    local_model_delay_ms: int
    """``LOCAL_MODEL_DELAY_MS``: the embedded model's pause between streamed words. Default 0."""
    app_check: AppCheckSettings = field(default_factory=AppCheckSettings)
    """Firebase App Check (``CHAT_APP_CHECK``, ``CHAT_APP_CHECK_CONSUME_MODELS``)."""
    sign_in: SignInSettings = field(default_factory=SignInSettings)
    """Sign-in policy (``CHAT_REQUIRE_VERIFIED_EMAIL``, ``CHAT_SIGN_IN_PROVIDERS``, ``CHAT_NEW_ACCOUNT_*``)."""
    replay_audience: str = ""
    """``REPLAY_AUDIENCE``: the replay function's URL, the audience of the OIDC token its caller
    must present (set by ``deploy.sh``)."""
    replay_invoker_email: str = ""
    """``REPLAY_INVOKER_EMAIL``: the one service account allowed to run the replay (the replay's
    own runtime account, whose OIDC token Cloud Scheduler sends). Required when deployed."""
    model_ids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Every id ``CHAT_MODELS`` lists, in its order -> its LiteLLM model: an entry ``ID=MODEL``
    (``gpt-4o-mini=openai/gpt-4o-mini``) gives the model a public id, one ``MODEL`` lists the
    model under its own name. ``/v1/models`` lists these ids; a client may send an id or the
    LiteLLM name (a client that strips a provider prefix, or refuses one it does not know, sends
    the id); calls are billed under the LiteLLM model."""
    model_prices: Mapping[str, ModelPrice] = field(default_factory=lambda: MappingProxyType({}))
    """``CHAT_MODEL_PRICES``: operator prices per model (JSON, US dollars per token; see
    ``shared/pricing/model_prices.py``), registered with LiteLLM at cold start."""

    @property
    def default_model(self) -> str:
        return self.chat_models[0]

    def model_for(self, requested: str) -> str | None:
        """The LiteLLM model a client's model name means (a listed id or a LiteLLM name), or None."""
        if requested in self.model_ids:
            return self.model_ids[requested]
        return requested if requested in self.chat_models else None

    @property
    def prices_required(self) -> bool:
        """Money depends on LiteLLM's cost (a budget, a new-account budget, the project cap, or a
        Lago metric that bills the cost): a model without a price would be free."""
        budgets = (self.budget_cents, self.sign_in.new_account_budget_cents, self.project_budget_cents)
        return self.lago.bills_cost or any(budget is not None for budget in budgets)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build the settings; raise ``SettingsError`` naming every malformed key at once
        (``RefusedToStart`` when one of them must stop the process)."""
        reader = _EnvReader(os.environ if env is None else env)
        deployed = is_deployed(reader.env)
        allow_anonymous = reader.flag("ALLOW_ANONYMOUS", False)
        if allow_anonymous and deployed:
            reader.fatal("ALLOW_ANONYMOUS=true is refused on a deployed instance (K_SERVICE is set)")
        if deployed and emulator_hosts(reader.env):
            # With one, firebase-admin accepts unsigned tokens and clients talk to no real service.
            names = ", ".join(emulator_hosts(reader.env))
            reader.fatal(f"{names} must not be set on a deployed instance (K_SERVICE is set)")
        models, model_ids = _chat_models(reader)
        charge_by = reader.text("LAGO_API_CHARGE_BY") or "user_id"
        if charge_by == "end_user_id":
            reader.errors.append(
                "LAGO_API_CHARGE_BY=end_user_id is not supported (it needs the LiteLLM Proxy); use user_id or team_id"
            )
        elif charge_by not in CHARGE_BY_CHOICES:
            reader.errors.append(f"LAGO_API_CHARGE_BY must be one of {', '.join(CHARGE_BY_CHOICES)}")
        team_claim = reader.text("LAGO_TEAM_CLAIM") or "team_id"
        if team_claim in USER_CHANGEABLE_CLAIMS:
            reader.errors.append(
                f"LAGO_TEAM_CLAIM must not be {team_claim!r}: a user can change it or it names the user"
            )
        prices, price_errors = parse_model_prices(reader.text("CHAT_MODEL_PRICES"))
        reader.errors.extend(price_errors)
        lago = LagoSettings(
            api_base=reader.text("LAGO_API_BASE").rstrip("/"),
            api_key=reader.text("LAGO_API_KEY"),
            event_code=reader.text("LAGO_API_EVENT_CODE"),
            charge_by=charge_by,
            team_claim=team_claim,
            flush_timeout_s=reader.number("LAGO_FLUSH_TIMEOUT_S", 3.0, low=0.1, high=60),
            plan_code=reader.text("LAGO_PLAN_CODE"),
            bills_cost=reader.flag("LAGO_BILLS_COST", False),
            read_timeout_s=reader.number("LAGO_READ_TIMEOUT_S", 1.5, low=0.1, high=30),
        )
        project = reader.text("GOOGLE_CLOUD_PROJECT") or reader.text("GCLOUD_PROJECT")
        settings = cls(
            chat_models=models,
            max_tokens=reader.integer("CHAT_MAX_TOKENS", 4096, low=1),
            max_body_bytes=reader.integer("CHAT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, low=1024),
            max_messages=reader.integer("CHAT_MAX_MESSAGES", 200, low=1),
            cors_origins=reader.csv("CORS_ORIGINS"),
            project_id=project,
            check_revoked=reader.flag("CHAT_CHECK_REVOKED", False),
            allow_anonymous=allow_anonymous,
            deployed=deployed,
            llm_timeout_s=reader.number("CHAT_LLM_TIMEOUT_S", 60.0, low=0.1, high=3600),
            lago=lago,
            outbox_enabled=reader.flag("BILLING_OUTBOX", True),
            require_billing=reader.flag("CHAT_REQUIRE_BILLING", deployed),
            replay_batch_size=reader.integer("BILLING_REPLAY_BATCH", 500, low=1),
            replay_budget_s=reader.number("BILLING_REPLAY_BUDGET_S", 50.0, low=0.1, high=3600),
            budget_cents=reader.optional_integer("CHAT_BUDGET_CENTS"),
            project_budget_cents=reader.optional_positive("CHAT_PROJECT_BUDGET_CENTS"),
            rate_limit_rpm=reader.optional_positive("CHAT_RATE_LIMIT_RPM"),
            rate_limit_tpm=reader.optional_positive("CHAT_RATE_LIMIT_TPM"),
            max_concurrent=reader.optional_positive("CHAT_MAX_CONCURRENT"),
            usage_cache_s=reader.number("CHAT_USAGE_CACHE_S", 10.0, low=0, high=3600),
            local_model_delay_ms=reader.integer("LOCAL_MODEL_DELAY_MS", 0, low=0),
            app_check=_app_check(reader, deployed, models),
            sign_in=_sign_in(reader, deployed),
            model_ids=MappingProxyType(model_ids),
            model_prices=prices,
            replay_audience=reader.text("REPLAY_AUDIENCE"),
            replay_invoker_email=reader.text("REPLAY_INVOKER_EMAIL"),
        )
        if reader.errors:
            raise (RefusedToStart if reader.refuse_to_start else SettingsError)("; ".join(reader.errors))
        return settings


def _chat_models(reader: _EnvReader) -> tuple[tuple[str, ...], dict[str, str]]:
    """``CHAT_MODELS``: the LiteLLM models, and every listed id with its model."""
    models: list[str] = []
    ids: dict[str, str] = {}
    for entry in reader.csv("CHAT_MODELS") or (DEFAULT_LOCAL_MODEL,):
        public, sep, model = (part.strip() for part in entry.partition("="))
        if not sep:
            public, model = "", public
        if not model or (sep and not public) or "=" in model:
            reader.errors.append(f"CHAT_MODELS entries are MODEL or ID=MODEL: {entry!r} is neither")
            continue
        public = public or model
        if public in ids:
            reader.errors.append(f"CHAT_MODELS lists the id {public!r} twice")
        ids[public] = model
        if model not in models:
            models.append(model)
    clashes = sorted(public for public in ids if public in models and ids[public] != public)
    if clashes:
        reader.errors.append(f"CHAT_MODELS ids that are another entry's model: {', '.join(clashes)}")
    return tuple(models), ids


def _app_check(reader: _EnvReader, deployed: bool, models: tuple[str, ...]) -> AppCheckSettings:
    mode = reader.text("CHAT_APP_CHECK").lower() or ("enforce" if deployed else "off")
    if mode not in APP_CHECK_MODES:
        reader.errors.append(f"CHAT_APP_CHECK must be one of {', '.join(APP_CHECK_MODES)}")
    consume = reader.csv("CHAT_APP_CHECK_CONSUME_MODELS")
    unknown = [model for model in consume if model not in models]
    if unknown:
        reader.errors.append(f"CHAT_APP_CHECK_CONSUME_MODELS names models not in CHAT_MODELS: {', '.join(unknown)}")
    if consume and mode == "off":
        reader.errors.append("CHAT_APP_CHECK_CONSUME_MODELS needs CHAT_APP_CHECK=monitor or enforce")
    return AppCheckSettings(mode=mode, consume_models=consume)


def _sign_in(reader: _EnvReader, deployed: bool) -> SignInSettings:
    providers = reader.csv("CHAT_SIGN_IN_PROVIDERS") or None
    budget = reader.optional_integer("CHAT_NEW_ACCOUNT_BUDGET_CENTS")
    if budget is not None and budget < 0:
        reader.errors.append("CHAT_NEW_ACCOUNT_BUDGET_CENTS must be at least 0")
    return SignInSettings(
        require_verified_email=reader.flag("CHAT_REQUIRE_VERIFIED_EMAIL", False),
        providers=providers,
        anonymous_allowed=ANONYMOUS_PROVIDER in providers if providers else not deployed,
        new_account_budget_cents=budget,
        new_account_days=reader.number("CHAT_NEW_ACCOUNT_DAYS", 30.0, low=0, high=3650),
    )


class _EnvReader:
    """Parses values and collects every problem, so one start-up names them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []
        self.refuse_to_start = False

    def fatal(self, problem: str) -> None:
        """A problem that must stop the process rather than let it serve (even with 503s)."""
        self.errors.append(problem)
        self.refuse_to_start = True

    def text(self, key: str) -> str:
        return self.env.get(key, "").strip()

    def csv(self, key: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.text(key).split(",") if part.strip())

    def flag(self, key: str, default: bool) -> bool:
        raw = self.text(key).lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{key} must be true or false")
        return default

    def integer(self, key: str, default: int, *, low: int) -> int:
        value = self.optional_integer(key)
        if value is None:
            return default
        if value < low:
            self.errors.append(f"{key} must be at least {low}")
            return default
        return value

    def optional_integer(self, key: str) -> int | None:
        raw = self.text(key)
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            self.errors.append(f"{key} must be a whole number")
            return None

    def optional_positive(self, key: str) -> int | None:
        value = self.optional_integer(key)
        if value is not None and value < 1:
            self.errors.append(f"{key} must be at least 1 (leave it unset to turn the limit off)")
            return None
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        raw = self.text(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{key} must be a number")
            return default
        if not low <= value <= high:
            self.errors.append(f"{key} must be between {low} and {high}")
            return default
        return value
