"""Lago usage events, built by pure functions from a call's id, time and usage (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import litellm

from .logs import log_once


@dataclass(frozen=True)
class CallContext:
    """One model call as billed: its id (the event's transaction id), its time, who pays, the model."""

    call_id: str
    timestamp: str
    uid: str
    payer: str
    model: str


class LagoEvent(TypedDict, total=False):
    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: str
    properties: dict[str, str | int | float]


@dataclass(frozen=True)
class CallUsage:
    """What one call consumed. ``partial`` marks a stream that ended before its usage chunk."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    response_cost: float | None = None
    partial: bool = False


def format_timestamp(unix_seconds: float) -> str:
    """Lago's timestamp with milliseconds, as a string so it is the same on every resend."""
    return f"{unix_seconds:.3f}"


def build_event(*, call_id: str, timestamp: str, payer: str, code: str, model: str, usage: CallUsage) -> LagoEvent:
    """The event for one call. Lago property values must be strings or numbers (no bool, no null)."""
    properties: dict[str, str | int | float] = {
        "model": model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.response_cost is not None:
        properties["response_cost"] = usage.response_cost
    if usage.cached_tokens:
        properties["cached_tokens"] = usage.cached_tokens
    if usage.reasoning_tokens:
        properties["reasoning_tokens"] = usage.reasoning_tokens
    if usage.partial:
        properties["partial"] = "true"
    return {
        "transaction_id": call_id,
        "external_subscription_id": payer,  # Lago's name for the payer
        "code": code,
        "timestamp": timestamp,
        "properties": properties,
    }


def usage_from_response(response: Any, model: str, *, cost: float | None = None, partial: bool = False) -> CallUsage:
    """Read a LiteLLM response's usage; price it when LiteLLM did not."""
    usage = getattr(response, "usage", None)
    prompt = int(_get(usage, "prompt_tokens") or 0)
    completion = int(_get(usage, "completion_tokens") or 0)
    total = int(_get(usage, "total_tokens") or prompt + completion)
    if cost is None:
        cost = price(model, prompt, completion)
    return CallUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=_get(_get(usage, "prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
        response_cost=cost,
        partial=partial,
    )


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost from LiteLLM's cost map, or None (logged once per model) for unmapped models."""
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # noqa: BLE001 - LiteLLM raises several types for an unmapped model
        log_once(f"cost:{model}", "WARNING", "model_cost_unknown", model=model, billed_by="tokens")
        return None
    return prompt_cost + completion_cost


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
