"""The per-instance singletons, created in one place at cold start.

``functions/main.py`` calls ``start_instance()`` once when Cloud Functions imports it, before
functions-framework's server forks. What it makes lives as long as the instance:

- ``settings``: the typed, immutable configuration;
- ``verifier``: the firebase-admin app that verifies ID tokens (initialised on first use);
- ``app_check`` / ``sign_in``: Firebase App Check and the sign-in policy, on the same app;
- ``firestore_db``: the one Firestore client (made on first use, after the fork) of the billing
  outbox, the spend ledger and the rate limits;
- ``billing``: the Lago callback registered on LiteLLM, the keep-alive Lago HTTP client and the
  Firestore outbox;
- ``chat``: the chat flow (``ChatService``), holding ``billing``, the Lago accounts (customers,
  subscriptions and usage, cached per payer), the payer's and the project's spending limits
  leased from the Firestore ledger (``ledger.py``), and the per-payer rate limits (``rate_limits.py``);
- the embedded local model, registered with LiteLLM when configured.

If the settings are unusable the instance still starts (no crash loop) and every request is
answered with a 503 that says the service is misconfigured, with CORS headers so a browser can
show it; the log line names the keys. A ``RefusedToStart`` setting stops the process instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

from .app_check import AppCheckGate
from .auth import TokenVerifier
from .billing import Billing
from .budget import BudgetGuard
from .chat import ChatService
from .errors import ApiError, ErrorCode
from .firestore_db import FirestoreDb
from .lago_accounts import LagoAccounts
from .ledger import LedgerStore, LocalLedgerStore, SpendLeases
from .logs import configure, log
from .outbox import Outbox
from .pricing.model_prices import register_prices, unpriced_models
from .rate_limits import LocalRateStore, RateLimits, RateStore
from .secret_env import SecretRetry, unavailable_models
from .settings import RefusedToStart, Settings, SettingsError, cors_origins_from_env
from .sign_in_policy import SignInPolicy


@dataclass(frozen=True)
class Instance:
    settings: Settings
    verifier: TokenVerifier
    billing: Billing
    chat: ChatService
    app_check: AppCheckGate
    sign_in: SignInPolicy
    # Billing is required but Lago's secrets could not be read at cold start: requests retry them.
    billing_retry: SecretRetry | None = None

    @property
    def cors_origins(self) -> tuple[str, ...]:
        return self.settings.cors_origins


@dataclass(frozen=True)
class BrokenInstance:
    """An instance whose configuration cannot serve: each request gets this 503."""

    cors_origins: tuple[str, ...]  # read on its own, so browsers still get the 503

    def error(self) -> ApiError:
        return ApiError(ErrorCode.UNAVAILABLE, "The service is misconfigured; its operators have been told.")


_lock = threading.Lock()
_instance: Instance | BrokenInstance | None = None


def start_instance(env: MutableMapping[str, str] | None = None) -> Instance | BrokenInstance:
    """Build the instance once per process (later calls return the same one)."""
    global _instance
    with _lock:
        if _instance is None:
            began = time.time()
            _instance = _build(os.environ if env is None else env)
            log("INFO", "instance_timing", started_at=round(began, 3), build_ms=round((time.time() - began) * 1000, 1))
        return _instance


def current_instance() -> Instance | BrokenInstance:
    """The instance for this request. While billing waits for Lago's secrets, a due retry runs
    here (one request at a time reads; the others go on at once) and, once they are read,
    billing starts as it would have at cold start."""
    global _instance
    instance = _instance or start_instance()
    if not isinstance(instance, Instance) or instance.billing_retry is None or not instance.billing_retry.attempt():
        return instance
    with _lock:
        if _instance is not None and _instance is not instance:
            return _instance  # rebuilt by another request meanwhile
        rebuilt = _build(os.environ, verifier=instance.verifier)  # the verifier owns the firebase-admin app
        _instance = rebuilt
    log("INFO", "billing_recovered", billing=isinstance(rebuilt, Instance) and rebuilt.billing.enabled)
    return rebuilt


def _build(env: MutableMapping[str, str], verifier: TokenVerifier | None = None) -> Instance | BrokenInstance:
    """The instance from the environment: settings, LiteLLM, billing, limits, then the chat flow."""
    configure()
    settings = _settings(env)
    if isinstance(settings, BrokenInstance):
        return settings
    broken = _prepare_litellm(settings)
    if broken is not None:
        return broken
    verifier = verifier or TokenVerifier(
        settings.project_id,
        check_revoked=settings.check_revoked,
        allow_anonymous=settings.allow_anonymous,
        deployed=settings.deployed,
    )
    firestore_db = FirestoreDb(settings.project_id)  # the one client of the outbox, ledger and rate limits
    billing = Billing(
        settings.lago, outbox=Outbox(firestore_db) if settings.outbox_enabled else None, deployed=settings.deployed
    )
    accounts = _lago_accounts(settings, billing)
    retry = (
        SecretRetry.for_missing(settings.lago.missing, env)
        if settings.require_billing and not billing.enabled
        else None
    )
    # Not deployed and no Firestore emulator (scripts/run): limits are kept in this process only.
    local_only = not settings.deployed and not env.get("FIRESTORE_EMULATOR_HOST")
    budget, limits = _limits(settings, accounts, firestore_db, local_only=local_only)
    sign_in = SignInPolicy(settings.sign_in, verifier.firebase_app)
    chat = ChatService(
        billing,
        require_billing=settings.require_billing,
        llm_timeout_s=settings.llm_timeout_s,
        accounts=accounts,
        budget=budget,
        budget_cap=sign_in.budget_cap_cents,
        limits=limits,
        unavailable_models=unavailable_models(settings.chat_models),
        deployed=settings.deployed,
        billing_retry=retry,
    )
    log(
        "INFO",
        "instance_started",
        models=list(settings.chat_models),
        billing=billing.enabled,
        budget=budget is not None,
        app_check=settings.app_check.mode,
        rate_limits=limits is not None,
    )
    app_check = AppCheckGate(settings.app_check, verifier.firebase_app)
    return Instance(settings, verifier, billing, chat, app_check, sign_in, retry)


def _settings(env: MutableMapping[str, str]) -> Settings | BrokenInstance:
    """The settings; unusable ones make a broken instance, a ``RefusedToStart`` stops the process."""
    try:
        return Settings.from_env(env)
    except RefusedToStart as error:
        log("CRITICAL", "settings_invalid", detail=str(error))
        raise  # a deployed instance must refuse to start open to anyone
    except SettingsError as error:
        log("ERROR", "settings_invalid", detail=str(error))
        return BrokenInstance(cors_origins_from_env(env))


def _prepare_litellm(settings: Settings) -> BrokenInstance | None:
    """Import LiteLLM, register the local models and the operator's prices; refuse unpriced models."""
    import litellm  # after secrets and LITELLM_LOCAL_MODEL_COST_MAP are in the environment

    litellm.suppress_debug_info = True
    from .llm import preload
    from .local_model import register_local_models

    preload()
    register_local_models(settings.chat_models, settings.local_model_delay_ms / 1000)
    register_prices(settings.model_prices)
    unpriced = unpriced_models(settings.chat_models) if settings.prices_required else ()
    if unpriced:
        detail = (
            f"no price for {', '.join(unpriced)}: with a budget (CHAT_BUDGET_CENTS, CHAT_NEW_ACCOUNT_BUDGET_CENTS, "
            "CHAT_PROJECT_BUDGET_CENTS) or LAGO_BILLS_COST every model in "
            "CHAT_MODELS needs one (LiteLLM's cost map or CHAT_MODEL_PRICES), else its calls are free"
        )
        log("ERROR", "settings_invalid", detail=detail, models=list(unpriced))
        return BrokenInstance(settings.cors_origins)
    if settings.deployed and not settings.require_billing:
        log(
            "WARNING",
            "billing_not_required",
            reason="CHAT_REQUIRE_BILLING=false: chat is served unbilled if Lago is off",
        )
    return None


def _lago_accounts(settings: Settings, billing: Billing) -> LagoAccounts | None:
    """Lago's customers, subscriptions and usage, when billing is on."""
    if billing.enabled:
        lago = settings.lago
        return LagoAccounts(
            lago.api_base,
            lago.api_key,
            plan_code=lago.plan_code,
            cache_s=settings.usage_cache_s,
            read_timeout_s=lago.read_timeout_s,
            team_payers=lago.charge_by == "team_id",
        )
    if settings.budget_cents is not None or settings.sign_in.new_account_budget_cents is not None:
        log("ERROR", "budget_disabled", reason="CHAT_BUDGET_CENTS and CHAT_NEW_ACCOUNT_BUDGET_CENTS need Lago")
    return None


def _limits(
    settings: Settings, accounts: LagoAccounts | None, firestore_db: FirestoreDb, *, local_only: bool
) -> tuple[BudgetGuard | None, RateLimits | None]:
    """The spending limits (payer's and project's ledgers) and the rate limits, each if configured."""
    limited = (settings.budget_cents, settings.project_budget_cents, settings.rate_limit_rpm) != (None, None, None)
    if local_only and (limited or settings.rate_limit_tpm is not None or settings.max_concurrent is not None):
        log("INFO", "limits_local", reason="no FIRESTORE_EMULATOR_HOST: budgets and rate limits are per instance")
    budget = limits = None
    payer_budget = accounts is not None and (
        settings.budget_cents is not None or settings.sign_in.new_account_budget_cents is not None
    )
    if payer_budget or settings.project_budget_cents is not None:
        leases = SpendLeases(LocalLedgerStore() if local_only else LedgerStore(firestore_db))
        budget = BudgetGuard(
            accounts,
            leases,
            default_limit_cents=settings.budget_cents if accounts is not None else None,
            project_limit_cents=settings.project_budget_cents,
        )
    if (settings.rate_limit_rpm, settings.rate_limit_tpm, settings.max_concurrent) != (None, None, None):
        limits = RateLimits(
            LocalRateStore() if local_only else RateStore(firestore_db),
            rpm=settings.rate_limit_rpm,
            tpm=settings.rate_limit_tpm,
            max_concurrent=settings.max_concurrent,
        )
    return budget, limits
