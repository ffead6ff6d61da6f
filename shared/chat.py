"""One chat request, end to end: the checks before the call, the call, its billing, the answer.

``ChatService`` (one per instance, ``instance.chat``) takes a parsed request and its verified
caller. Before the model is called it refuses what cannot be served or billed, provisions the
payer in Lago and reserves the call's worst-case cost against the payer's budget.

Billing is flushed before the response's last byte: before the JSON body is returned, and
before ``data: [DONE]`` (or the error event) of a stream. A stream that the client abandons
is billed as partial in the generator's cleanup, which runs before the request ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import llm
from .auth import Caller
from .billing import Billing, RequestBilling
from .billing_event import CallContext
from .budget import BudgetGuard
from .chat_request import ChatRequest
from .chat_wire import chunk_body, completion_body
from .errors import REQUEST_ID_HEADER, ApiError, ErrorCode
from .lago_accounts import Account, LagoAccounts
from .logs import log
from .pricing.estimate import estimate, partial_usage, worst_case_cost
from .pricing.usage import CallUsage
from .rate_limits import Permit, RateLimits
from .reservation import NO_RESERVATION, Reservation
from .secret_env import SecretRetry
from .shutdown import SHUTDOWN

# The error event that ends a stream the instance's shutdown cut short (its sent part is billed).
SHUTTING_DOWN = ApiError(ErrorCode.UNAVAILABLE, "The server is shutting down; the answer was cut short. Retry it.")


@dataclass(frozen=True)
class JsonAnswer:
    """A ``chat.completion`` body, billed, and the headers it goes out with (``x-ratelimit-*``)."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamAnswer:
    """A started stream: the call's id, its SSE lines (billed before the last), its headers."""

    call_id: str
    lines: Iterator[str]
    headers: dict[str, str] = field(default_factory=dict)


class ChatService:
    """Per instance: answers chat requests and usage questions for verified callers."""

    def __init__(
        self,
        billing: Billing,
        *,
        require_billing: bool,
        llm_timeout_s: float,
        accounts: LagoAccounts | None = None,
        budget: BudgetGuard | None = None,
        budget_cap: Callable[[Caller], int | None] | None = None,
        limits: RateLimits | None = None,
        unavailable_models: Mapping[str, tuple[str, ...]] | None = None,
        deployed: bool = False,
        billing_retry: SecretRetry | None = None,
    ) -> None:
        self.billing = billing
        self.accounts = accounts  # when Lago is configured
        self.budget = budget  # CHAT_BUDGET_CENTS / CHAT_NEW_ACCOUNT_BUDGET_CENTS (with Lago), CHAT_PROJECT_BUDGET_CENTS
        self.limits = limits  # any of CHAT_RATE_LIMIT_RPM / _TPM, CHAT_MAX_CONCURRENT
        # Configured, but their provider keys are missing: model -> the missing variables.
        self.unavailable_models = dict(unavailable_models or {})
        # Reported by the first chat request, not at cold start: usage and replay_billing share
        # the instance code but call no model (and get no provider keys), so they stay quiet.
        self._unreported = bool(self.unavailable_models)
        self._report_lock = threading.Lock()
        self._deployed = deployed
        self._budget_cap = budget_cap  # a caller's lower limit (the sign-in policy's new accounts)
        self._require_billing = require_billing
        self._billing_retry = billing_retry  # Lago's secrets, read again by requests until they are
        self._timeout_s = llm_timeout_s

    def complete(self, request: ChatRequest, caller: Caller) -> JsonAnswer:
        """A ``chat.completion`` body; the call is billed before this returns."""
        billing, headers = self._prepare(request, caller)
        with _answer_headers_on_error(headers):
            return JsonAnswer(complete_json(request, billing, self._timeout_s), headers)

    def stream(self, request: ChatRequest, caller: Caller) -> StreamAnswer:
        """The call's id and its SSE lines; errors before the first byte raise ``ApiError``."""
        billing, headers = self._prepare(request, caller)
        with _answer_headers_on_error(headers):
            call_id, lines = open_event_stream(request, billing, self._timeout_s)
        return StreamAnswer(call_id, lines, headers)

    def usage(self, caller: Caller) -> dict[str, Any]:
        """The payer's usage in the current billing period, and its budget (the usage view's body)."""
        if self.accounts is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "Usage is not available: billing is not configured.")
        payer = self.billing.payer_for(caller)
        # A new user's subscription is made here too (once, as the first chat would): until it
        # exists Lago has no period or currency to report, only a 404.
        self.accounts.provision(payer, caller)
        # The usage view shows what was just billed: a fresh read (bounded by the read deadline),
        # the cached figure only when Lago cannot answer in time.
        account = self.accounts.account(payer, fresh=True)
        if account is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "Usage is unavailable right now; try again shortly.")
        budget = self.budget.remaining(payer, self._cap(payer, caller)) if self.budget else None
        return usage_body(account, budget)

    def _billing_unavailable(self) -> ApiError:
        if self._billing_retry is None:
            return ApiError(ErrorCode.UNAVAILABLE, "Chat is unavailable: billing is not working on this instance.")
        return ApiError(
            ErrorCode.UNAVAILABLE,
            "Chat is unavailable: billing's settings could not be read yet; retry shortly.",
            headers={"Retry-After": str(self._billing_retry.retry_after_s())},
        )

    def _prepare(self, request: ChatRequest, caller: Caller) -> tuple[RequestBilling, dict[str, str]]:
        """Refuse what cannot be served or billed, then provision the payer and hold its budget.

        Also returns the rate limits' ``x-ratelimit-*`` headers, which every answer carries."""
        if self._unreported:
            self._report_unavailable_models()
        if self._require_billing and not self.billing.enabled:
            raise self._billing_unavailable()
        if request.model in self.unavailable_models:
            message = f"The model '{request.model}' is not available: its provider credentials are missing."
            raise ApiError(ErrorCode.UNAVAILABLE, message)
        billing = self.billing.for_request(caller)
        if self.limits is None and self.budget is None:
            if self.accounts is not None:
                self.accounts.provision(billing.payer, caller)
            return billing, {}
        tokens = estimate(request)  # the one estimate: the TPM limit's tokens and the budget's worst case
        worst_case = worst_case_cost(request.model, tokens)
        permit = self._admit(billing.payer, caller.uid, tokens.total_tokens)
        try:
            if self.accounts is not None:
                self.accounts.provision(billing.payer, caller)
            reservation = NO_RESERVATION
            if self.budget is not None:
                cap = self._cap(billing.payer, caller)
                reservation = self.budget.reserve(billing.payer, (worst_case or 0.0) * 100, cap)
        except ApiError as error:
            permit.release()
            error.headers.update({k: v for k, v in permit.headers.items() if k not in error.headers})
            raise
        except BaseException:
            permit.release()
            raise
        billing.hold(Reservation(lambda _: permit.release()).then(reservation), worst_case)
        return billing, dict(permit.headers)

    def _report_unavailable_models(self) -> None:
        with self._report_lock:
            if not self._unreported:
                return
            self._unreported = False
        for model, missing in self.unavailable_models.items():
            log("ERROR" if self._deployed else "WARNING", "model_unavailable", model=model, missing=list(missing))

    def _admit(self, payer: str, uid: str, tokens: int) -> Permit:
        """Count the request against the payer's rate limits (and the member's, in team mode)."""
        if self.limits is None:
            return Permit({})
        keys = [f"payer:{payer}"] + ([f"uid:{uid}"] if uid != payer else [])
        return self.limits.admit(keys, tokens)

    def _cap(self, payer: str, caller: Caller) -> int | None:
        # A member's account age says nothing about a team's shared budget: users' own budgets only.
        if self._budget_cap is None or payer != caller.uid:
            return None
        return self._budget_cap(caller)


@contextlib.contextmanager
def _answer_headers_on_error(headers: dict[str, str]) -> Iterator[None]:
    """An error after admission still carries the rate limits' headers (as OpenAI's do)."""
    try:
        yield
    except ApiError as error:
        for name, value in headers.items():
            error.headers.setdefault(name, value)
        raise


def usage_body(account: Account, budget: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "object": "usage",
        "period": {"from": account.from_datetime, "to": account.to_datetime},
        "currency": account.currency,
        "amount_cents": account.amount_cents,
        "total_amount_cents": account.total_amount_cents,
        "models": [
            {"model": m.model, "tokens": m.tokens, "amount_cents": m.amount_cents, "requests": m.events}
            for m in account.models
        ],
        "budget": {"limit_cents": budget[0], "remaining_cents": budget[1]} if budget else None,
    }


def complete_json(request: ChatRequest, billing: RequestBilling, timeout_s: float) -> dict[str, Any]:
    """A ``chat.completion`` body; the call is billed before this returns."""
    call = billing.start_call(request.model)
    try:
        response = llm.complete(request, call, timeout_s)
        usage = billing.succeeded(call, response)
    except ApiError as error:
        billing.failed(call)
        error.headers.setdefault(REQUEST_ID_HEADER, call.call_id)
        raise
    finally:
        billing.flush()
    body = completion_body(response)
    body.update(id=call.call_id, object="chat.completion", model=request.model)
    if usage.cost is not None and isinstance(body.get("usage"), dict):
        body["usage"]["cost"] = usage.cost  # dollars, as billed (and as a stream's usage chunk says)
    return body


def open_event_stream(request: ChatRequest, billing: RequestBilling, timeout_s: float) -> tuple[str, Iterator[str]]:
    """Start the call (errors before the first byte raise ``ApiError``): its id and its SSE lines."""
    call = billing.start_call(request.model)
    try:
        stream = llm.open_stream(request, call, timeout_s)
    except ApiError as error:
        billing.failed(call)
        billing.flush()  # nothing to bill; releases the budget reservation
        error.headers.setdefault(REQUEST_ID_HEADER, call.call_id)
        raise
    return call.call_id, _sse(stream, request, call, billing)


class _StreamBill:
    """What a stream generated so far, and its one settle: record the call, then flush."""

    def __init__(self, billing: RequestBilling, call: CallContext, request: ChatRequest) -> None:
        self._billing, self._call, self._request = billing, call, request
        self.sent: list[Any] = []
        self._final: CallUsage | None = None
        self._settled = False
        self._lock = threading.Lock()

    def finish(self, usage_chunk: Any) -> CallUsage | None:
        """Record the provider's usage chunk, priced; None when the stream was already settled."""
        with self._lock:
            if not self._settled:
                self._final = self._billing.succeeded(self._call, usage_chunk)
            return self._final

    def settle(self) -> None:
        """Bill what was generated; idempotent, so the stream's ``finally`` can call it again, and
        thread-safe: at shutdown another thread settles a stream stuck waiting on its provider."""
        with self._lock:
            if self._settled:
                return
            self._settled = True
            final, sent = self._final, list(self.sent)
        if final is None and not sent:
            self._billing.failed(self._call)  # nothing generated, nothing billed
        elif final is None:  # cut before the usage chunk: the estimated prompt, the generated completion
            self._billing.cut_short(self._call, partial_usage(self._request, sent))
        self._billing.flush()


def _sse(stream: Any, request: ChatRequest, call: CallContext, billing: RequestBilling) -> Iterator[str]:
    bill = _StreamBill(billing, call, request)
    finishes = _Finishes(request.n)
    untrack = SHUTDOWN.track(bill.settle)
    try:
        last = "data: [DONE]\n\n"
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None) is not None and not chunk.choices:
                    yield from finishes.missing(call, request.model)
                    usage = bill.finish(chunk)
                    if request.include_usage:
                        yield _data(chunk, call, request.model, cost=usage.cost if usage else None)
                    continue
                bill.sent.append(chunk)
                finishes.saw(chunk)
                yield _data(chunk, call, request.model)
                if SHUTDOWN.stream_must_end():  # the instance is going away: bill what was sent, then end
                    last = f"data: {json.dumps(SHUTTING_DOWN.to_dict())}\n\n"
                    break
            else:
                yield from finishes.missing(call, request.model)
        except Exception as error:  # noqa: BLE001 - a provider failure mid-stream ends the stream
            last = f"data: {json.dumps(llm.provider_error(error, call).to_dict())}\n\n"
        bill.settle()  # billed before the last line reaches the client
        yield last
    finally:
        bill.settle()  # the client went away: bill what was generated, before the request ends
        untrack()
        _close(stream)


class _Finishes:
    """LiteLLM's stream wrapper passes on only the first choice's ``finish_reason``: with ``n`` > 1
    the other choices get theirs (the same reason) in a chunk of their own before the usage chunk."""

    def __init__(self, n: int) -> None:
        self._open = set(range(n))
        self._reason: str | None = None

    def saw(self, chunk: Any) -> None:
        for choice in chunk.choices:
            if choice.finish_reason:
                self._open.discard(choice.index)
                self._reason = choice.finish_reason

    def missing(self, call: CallContext, model: str) -> Iterator[str]:
        if self._reason is None:
            return
        for index in sorted(self._open):
            choice = {"index": index, "delta": {}, "finish_reason": self._reason}
            body = {
                "id": call.call_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
            }
            yield f"data: {json.dumps(body, separators=(',', ':'))}\n\n"
        self._open.clear()


def _data(chunk: Any, call: CallContext, model: str, cost: float | None = None) -> str:
    body = chunk_body(chunk)
    body.update(id=call.call_id, model=model)
    if cost is not None and isinstance(body.get("usage"), dict):
        body["usage"]["cost"] = cost  # the usage chunk says what the answer cost (USD), as billed
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def _close(stream: Any) -> None:
    # Stop the provider's generation when the client is gone (frees the connection too).
    for target in (getattr(stream, "completion_stream", None), stream):
        close = getattr(target, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # best effort on a stream we are abandoning
                close()
