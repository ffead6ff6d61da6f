"""Settings: one typed, immutable object built from the environment once per instance."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .model_prices import ModelPrice, parse_model_prices

# end_user_id (LiteLLM's default) exists only under the LiteLLM Proxy: here it would bill the uid.
CHARGE_BY_CHOICES = ("user_id", "team_id")
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
    api_key: str = field(default="", repr=False)
    event_code: str = ""
    charge_by: str = "user_id"
    team_claim: str = "team_id"
    flush_timeout_s: float = 3.0
    plan_code: str = ""
    bills_cost: bool = False
    """``LAGO_BILLS_COST``: the Lago metric sums ``response_cost`` (billing at cost), so every
    allowlisted model must have a price, or its calls would be billed 0."""

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
class Settings:
    """Everything the functions read from the environment, parsed and checked once."""

    chat_models: tuple[str, ...]
    max_tokens: int
    max_body_bytes: int
    max_messages: int
    cors_origins: tuple[str, ...]
    project_id: str
    check_revoked: bool
    allow_anonymous: bool
    deployed: bool
    llm_timeout_s: float
    lago: LagoSettings
    outbox_enabled: bool
    require_billing: bool
    """``CHAT_REQUIRE_BILLING``: answer chat with 503 rather than serve it unbilled. True by
    default on a deployed instance; an explicit false is logged at WARNING on every cold start."""
    replay_batch_size: int
    budget_cents: int | None
    usage_cache_s: float
    local_model_delay_ms: int
    replay_audience: str = ""
    """``REPLAY_AUDIENCE``: the replay function's URL, the audience of the OIDC token its caller
    must present (set by ``deploy.sh``)."""
    replay_invoker_email: str = ""
    """``REPLAY_INVOKER_EMAIL``: the one service account allowed to run the replay (the replay's
    own runtime account, whose OIDC token Cloud Scheduler sends). Required when deployed."""
    model_prices: Mapping[str, ModelPrice] = field(default_factory=lambda: MappingProxyType({}))
    """``CHAT_MODEL_PRICES``: operator prices per model (JSON, US dollars per token; see
    ``shared/model_prices.py``), registered with LiteLLM at cold start."""

    @property
    def default_model(self) -> str:
        return self.chat_models[0]

    @property
    def prices_required(self) -> bool:
        """Money depends on LiteLLM's cost: a model without a price would be free."""
        return self.budget_cents is not None or self.lago.bills_cost

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
        models = reader.csv("CHAT_MODELS") or (DEFAULT_LOCAL_MODEL,)
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
            replay_batch_size=reader.integer("BILLING_REPLAY_BATCH", 200, low=1),
            budget_cents=reader.optional_integer("CHAT_BUDGET_CENTS"),
            usage_cache_s=reader.number("CHAT_USAGE_CACHE_S", 10.0, low=0, high=3600),
            local_model_delay_ms=reader.integer("LOCAL_MODEL_DELAY_MS", 0, low=0),
            model_prices=prices,
            replay_audience=reader.text("REPLAY_AUDIENCE"),
            replay_invoker_email=reader.text("REPLAY_INVOKER_EMAIL"),
        )
        if reader.errors:
            raise (RefusedToStart if reader.refuse_to_start else SettingsError)("; ".join(reader.errors))
        return settings


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
