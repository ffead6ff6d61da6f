"""One chat request, end to end: call the model, bill the call, shape the OpenAI response.

Billing is flushed before the response's last byte: before the JSON body is returned, and
before ``data: [DONE]`` (or the error event) of a stream. A stream that the client abandons
is billed as partial in the generator's cleanup, which runs before the request ends.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import litellm

from . import llm
from .billing import BillingLedger
from .billing_event import CallUsage, usage_from_response
from .chat_request import ChatRequest
from .errors import ApiError
from .llm import CallContext

# The response header that carries the call's id (Lago's transaction_id).
REQUEST_ID_HEADER = "x-request-id"


def complete_json(request: ChatRequest, ledger: BillingLedger, timeout_s: float) -> dict[str, Any]:
    """A ``chat.completion`` body; the call is billed before this returns."""
    call = ledger.start_call(request.model)
    try:
        response = llm.complete(request, call, timeout_s)
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        usage = usage_from_response(response, request.model, cost=cost)
        ledger.succeeded(call, usage)
    except ApiError as error:
        ledger.failed(call)
        error.headers.setdefault(REQUEST_ID_HEADER, call.call_id)
        raise
    finally:
        ledger.flush()
    body: dict[str, Any] = response.model_dump(exclude_none=True)
    body.update(id=call.call_id, object="chat.completion", model=request.model)
    for choice in body.get("choices", []):
        choice.pop("provider_specific_fields", None)
    if usage.response_cost is not None and isinstance(body.get("usage"), dict):
        body["usage"]["cost"] = usage.response_cost  # dollars, as LiteLLM puts it in a stream's usage chunk
    return body


def open_event_stream(request: ChatRequest, ledger: BillingLedger, timeout_s: float) -> tuple[str, Iterator[str]]:
    """Start the call (errors before the first byte raise ``ApiError``): its id and its SSE lines."""
    call = ledger.start_call(request.model)
    try:
        stream = llm.open_stream(request, call, timeout_s)
    except ApiError as error:
        ledger.failed(call)
        ledger.flush()  # nothing to bill; releases the budget reservation
        error.headers.setdefault(REQUEST_ID_HEADER, call.call_id)
        raise
    return call.call_id, _sse(stream, request, call, ledger)


def _sse(stream: Any, request: ChatRequest, call: CallContext, ledger: BillingLedger) -> Iterator[str]:
    sent: list[Any] = []
    final_usage: CallUsage | None = None
    finishes = _Finishes(request.n)
    done = False
    try:
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None) is not None and not chunk.choices:
                    yield from finishes.missing(call, request.model)
                    final_usage = usage_from_response(chunk, request.model)
                    if not request.include_usage:
                        continue
                else:
                    sent.append(chunk)
                    finishes.saw(chunk)
                yield _data(chunk, call, request.model)
            yield from finishes.missing(call, request.model)
        except Exception as error:  # noqa: BLE001 - a provider failure mid-stream ends the stream
            api_error = llm.provider_error(error, call)
            _record(ledger, call, request, sent, final_usage)
            ledger.flush()
            done = True
            yield f"data: {json.dumps(api_error.to_dict())}\n\n"
            return
        _record(ledger, call, request, sent, final_usage)
        ledger.flush()
        done = True
        yield "data: [DONE]\n\n"
    finally:
        if not done:  # the client went away: bill what was generated, before the request ends
            _record(ledger, call, request, sent, final_usage)
            ledger.flush()
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


def _data(chunk: Any, call: CallContext, model: str) -> str:
    body = chunk.model_dump(exclude_none=True)
    body.update(id=call.call_id, model=model)
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def _record(
    ledger: BillingLedger, call: CallContext, request: ChatRequest, sent: list[Any], final: CallUsage | None
) -> None:
    if final is not None:
        ledger.succeeded(call, final)
        return
    if not sent:
        ledger.failed(call)  # nothing generated, nothing billed
        return
    rebuilt = litellm.stream_chunk_builder(sent, messages=request.messages)
    ledger.succeeded(call, usage_from_response(rebuilt, request.model, partial=True))


def _close(stream: Any) -> None:
    # Stop the provider's generation when the client is gone (frees the connection too).
    for target in (getattr(stream, "completion_stream", None), stream):
        close = getattr(target, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # best effort on a stream we are abandoning
                close()
