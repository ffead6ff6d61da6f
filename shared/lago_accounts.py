"""Lago customers, subscriptions and current usage, through the official ``lago-python-client``.

- ``provision``: the first time a payer is seen on an instance, make sure Lago has
  its customer and its subscription (plan ``LAGO_PLAN_CODE``), creating them when missing.
  The customer is looked up first and created only on Lago's 404: Lago's create is an upsert,
  and an existing customer (named by an operator, or by its owner) is never overwritten. In
  team mode the customer gets no email or name: a member's are not the team's. A second
  subscription with the same ``external_id`` is refused with 422, which counts as success.
  Results are cached per instance; concurrent first calls share one attempt. Two instances
  racing on a new payer may both create it: the same fields, so the upsert changes nothing.
- ``account``: the payer's current-period usage and its per-customer budget (customer
  metadata ``chat_budget_cents``), cached briefly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Customer, Subscription

from .auth import Caller
from .logs import log, log_once, uid_hash

BUDGET_METADATA_KEY = "chat_budget_cents"
_TIMEOUT = httpx.Timeout(3.0)
_FAILURE_RETRY_S = 30.0


@dataclass(frozen=True)
class ModelUsage:
    model: str
    tokens: float
    amount_cents: int
    events: int


@dataclass(frozen=True)
class Account:
    """A payer's current billing period as Lago sees it, and when we asked."""

    amount_cents: int
    total_amount_cents: int
    currency: str
    from_datetime: str | None
    to_datetime: str | None
    models: tuple[ModelUsage, ...] = ()
    budget_cents: int | None = None
    fetched_at: float = field(default_factory=time.monotonic)


class LagoAccounts:
    """Per instance: provisioning and usage reads, each cached per payer."""

    def __init__(
        self, api_base: str, api_key: str, *, plan_code: str, cache_s: float, team_payers: bool = False
    ) -> None:
        self._client = Client(api_key=api_key, api_url=api_base.rstrip("/") + "/", max_retries=0)
        self._plan_code = plan_code
        self._team_payers = team_payers
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._provisioned: set[str] = set()
        self._failed_at: dict[str, float] = {}
        self._payer_locks: dict[str, threading.Lock] = {}
        self._accounts: dict[str, Account] = {}
        if not plan_code:
            log("INFO", "lago_provisioning_off", reason="LAGO_PLAN_CODE is not set; users are provisioned elsewhere")

    def _payer_lock(self, payer: str) -> threading.Lock:
        with self._lock:
            return self._payer_locks.setdefault(payer, threading.Lock())

    # --- provisioning -------------------------------------------------------------------------
    def provision(self, payer: str, caller: Caller) -> None:
        """Create the customer and subscription once; failures are logged and never block chat."""
        if not self._plan_code or payer in self._provisioned:
            return
        with self._payer_lock(payer):
            if payer in self._provisioned:
                return
            if time.monotonic() - self._failed_at.get(payer, -_FAILURE_RETRY_S) < _FAILURE_RETRY_S:
                return  # failed a moment ago: don't make every request pay for Lago being down
            try:
                self._create_customer(payer, caller)
                self._create_subscription(payer)
            except (LagoApiError, httpx.HTTPError, ValueError) as error:  # ValueError: an answer of the wrong shape
                self._failed_at[payer] = time.monotonic()
                log("ERROR", "lago_provisioning_failed", payer_hash=uid_hash(payer), **_error_fields(error))
                return
            self._provisioned.add(payer)
            log("INFO", "lago_provisioned", payer_hash=uid_hash(payer), plan_code=self._plan_code)

    def _create_customer(self, payer: str, caller: Caller) -> None:
        # Lago's create is an upsert: only a customer Lago does not have is created.
        try:
            self._client.customers.find(payer, timeout=_TIMEOUT)
            return
        except LagoApiError as error:
            if error.status_code != 404:
                raise
        if self._team_payers:
            customer = Customer(external_id=payer)
        else:
            customer = Customer(external_id=payer, email=caller.email, name=caller.name or caller.email)
        self._client.customers.create(customer, timeout=_TIMEOUT)

    def _create_subscription(self, payer: str) -> None:
        subscription = Subscription(external_customer_id=payer, external_id=payer, plan_code=self._plan_code)
        try:
            self._client.subscriptions.create(subscription, timeout=_TIMEOUT)
        except LagoApiError as error:
            if error.status_code == 422 and "value_already_exist" in str(error.response):
                return  # made by another instance or an earlier life of this one
            raise

    # --- usage ---------------------------------------------------------------------------------
    def account(self, payer: str) -> Account | None:
        """The payer's usage (cached for ``cache_s``); None when Lago cannot say right now."""
        asked_at = time.monotonic()
        cached = self._accounts.get(payer)
        if cached and asked_at - cached.fetched_at < self._cache_s:
            return cached
        with self._payer_lock(payer):
            cached = self._accounts.get(payer)
            if cached and cached.fetched_at >= asked_at:
                return cached  # fetched by a concurrent request after we asked: as fresh as ours
            try:
                account = self._fetch(payer)
            except (LagoApiError, httpx.HTTPError, ValueError) as error:  # ValueError: an answer of the wrong shape
                log("WARNING", "lago_usage_unavailable", payer_hash=uid_hash(payer), **_error_fields(error))
                return cached
            self._accounts[payer] = account
            return account

    def _fetch(self, payer: str) -> Account:
        started = time.monotonic()
        budget = self._budget_from_metadata(payer)
        try:
            usage = self._client.customers.current_usage(payer, external_subscription_id=payer)
        except LagoApiError as error:
            if error.status_code == 404:  # no customer or subscription yet: nothing used
                return Account(0, 0, "", None, None, (), budget, started)
            raise
        return Account(
            amount_cents=usage.amount_cents,
            total_amount_cents=usage.total_amount_cents,
            currency=usage.currency,
            from_datetime=usage.from_datetime,
            to_datetime=usage.to_datetime,
            models=_models(usage.charges_usage),
            budget_cents=budget,
            fetched_at=started,
        )

    def _budget_from_metadata(self, payer: str) -> int | None:
        try:
            customer = self._client.customers.find(payer, timeout=_TIMEOUT)
        except LagoApiError as error:
            if error.status_code == 404:
                return None
            raise
        for item in customer.metadata.__root__ if customer.metadata else []:
            if item.key == BUDGET_METADATA_KEY and item.value:
                try:
                    return int(item.value)
                except ValueError:
                    log_once(f"budget:{payer}", "WARNING", "budget_metadata_invalid", payer_hash=uid_hash(payer))
        return None


def _models(charges: list[Any]) -> tuple[ModelUsage, ...]:
    """Tokens per model from charges grouped by, or filtered on, the ``model`` property."""
    found: dict[str, ModelUsage] = {}
    for charge in charges:
        rows = [(g.grouped_by.get("model"), g) for g in (charge.grouped_usage or [])]
        rows += [(next(iter((f.values or {}).get("model", [])), None), f) for f in (charge.filters or [])]
        for model, row in rows:
            if not model:
                continue
            previous = found.get(model)
            tokens = float(row.units) + (previous.tokens if previous else 0)
            amount = row.amount_cents + (previous.amount_cents if previous else 0)
            events = row.events_count + (previous.events if previous else 0)
            found[model] = ModelUsage(model, tokens, amount, events)
    return tuple(sorted(found.values(), key=lambda m: m.model))


def _error_fields(error: Exception) -> dict[str, Any]:
    if isinstance(error, LagoApiError):
        return {"status": error.status_code, "detail": str(error.response)[:300]}
    return {"error_class": type(error).__name__}
