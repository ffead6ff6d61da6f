"""Lago usage events, built by pure functions from a call's id, time and priced usage (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # replay and reingest read events without importing LiteLLM
    from .pricing.usage import CallUsage


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
        # The parts of those an operator prices differently in Lago (each inside its whole).
        "cached_tokens": usage.cached_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    for key in ("cache_creation_1h_tokens", "audio_prompt_tokens", "audio_completion_tokens"):
        if getattr(usage, key):
            properties[key] = getattr(usage, key)
    if usage.cost is not None:
        properties["response_cost"] = usage.cost
    if usage.partial:
        properties["partial"] = "true"
    return {
        "transaction_id": call_id,
        "external_subscription_id": payer,  # Lago's name for the payer
        "code": code,
        "timestamp": timestamp,
        "properties": properties,
    }
