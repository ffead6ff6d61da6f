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

Reads are bounded and never make a request wait behind another one: each GET has one deadline
(``LAGO_READ_TIMEOUT_S``) and no retries (lago-python-client retries 429 three times by default,
sleeping up to 20 s each, and ``current_usage`` takes no timeout: we send that GET with the
library's own request helpers instead). A fetch runs on its own thread and holds no lock while
it talks to Lago; a request that has a figure, even a stale one, uses it at once and leaves the
refresh running (it finishes during this request or, if Cloud Functions throttles the CPU after
the response, during the next one). Only a payer's first read waits, and at most the deadline.
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
from lago_python_client.models.customer_usage import CustomerUsageResponse
from lago_python_client.services.rate_limit import RateLimitRetryConfig
from lago_python_client.services.request import make_headers, make_url, send_get_request
from lago_python_client.services.response import get_response_data, prepare_object_response

from .auth import Caller
from .logs import log, log_once, uid_hash

BUDGET_METADATA_KEY = "chat_budget_cents"
_TIMEOUT = httpx.Timeout(3.0)
_FAILURE_RETRY_S = 30.0
_NO_RETRIES = RateLimitRetryConfig(max_retries=0, retry_on_rate_limit=False)


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
        self,
        api_base: str,
        api_key: str,
        *,
        plan_code: str,
        cache_s: float,
        read_timeout_s: float = 1.5,
        team_payers: bool = False,
    ) -> None:
        self._client = Client(
            api_key=api_key, api_url=api_base.rstrip("/") + "/", max_retries=0, retry_on_rate_limit=False
        )
        self._plan_code = plan_code
        self._team_payers = team_payers
        self._cache_s = cache_s
        self._read_timeout_s = read_timeout_s
        self._read_timeout = httpx.Timeout(read_timeout_s)
        self._refreshing: dict[str, threading.Event] = {}
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
    def account(self, payer: str, *, fresh: bool = False) -> Account | None:
        """The payer's usage; None when Lago has not been able to say yet.

        Within ``cache_s`` the cached figure is returned. Past it, a refresh starts in the
        background and the stale figure is returned at once; ``fresh`` (and a payer never read
        before) waits for the refresh, at most the read deadline.
        """
        cached = self._accounts.get(payer)
        if cached and not fresh and time.monotonic() - cached.fetched_at < self._cache_s:
            return cached
        done = self.refresh(payer)
        if cached is not None and not fresh:
            return cached
        done.wait(self._read_timeout_s)
        return self._accounts.get(payer) or cached

    def refresh(self, payer: str) -> threading.Event:
        """Start reading the payer's usage unless a read is under way; set when it ends."""
        with self._lock:
            running = self._refreshing.get(payer)
            if running is not None:
                return running
            done = self._refreshing[payer] = threading.Event()
        threading.Thread(target=self._refresh, args=(payer, done), name="lago-usage", daemon=True).start()
        return done

    def _refresh(self, payer: str, done: threading.Event) -> None:
        try:
            self._accounts[payer] = self._fetch(payer)
        except (LagoApiError, httpx.HTTPError, ValueError) as error:  # ValueError: an answer of the wrong shape
            log("WARNING", "lago_usage_unavailable", payer_hash=uid_hash(payer), **_error_fields(error))
        except Exception as error:  # noqa: BLE001 - a background thread must not die silently
            log("ERROR", "lago_usage_failed", payer_hash=uid_hash(payer), error_class=type(error).__name__)
        finally:
            with self._lock:
                self._refreshing.pop(payer, None)
            done.set()

    def _fetch(self, payer: str) -> Account:
        started = time.monotonic()
        budget = self._budget_from_metadata(payer)
        try:
            usage = self._current_usage(payer)
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

    def _current_usage(self, payer: str) -> CustomerUsageResponse:
        # customers.current_usage has no timeout and retries 429: the same GET, bounded.
        customers = self._client.customers
        response = send_get_request(
            url=make_url(
                origin=customers.base_url,
                path_parts=("customers", payer, "current_usage"),
                query_pairs={"external_subscription_id": payer},
            ),
            headers=make_headers(api_key=customers.api_key),
            timeout=self._read_timeout,
            rate_limit_retry_config=_NO_RETRIES,
        )
        usage: CustomerUsageResponse = prepare_object_response(
            response_model=CustomerUsageResponse,
            data=get_response_data(response=response, key="customer_usage"),
        )
        return usage

    def _budget_from_metadata(self, payer: str) -> int | None:
        try:
            customer = self._client.customers.find(payer, timeout=self._read_timeout)
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
