"""A call's usage as the provider counted it, and its price.

LiteLLM turns every provider's usage into OpenAI's shape: ``prompt_tokens`` counts every input
token, cache reads (``prompt_tokens_details.cached_tokens``) and cache writes
(``cache_creation_tokens``, split by TTL in ``cache_creation_token_details``) included;
``completion_tokens`` counts every output token, reasoning (``completion_tokens_details``)
included. ``read_usage`` takes that shape, repairs what cannot be true (a part larger than its
whole: the provider's count left the part out), and ``priced`` prices it.

The price is LiteLLM's cost function (``litellm.cost_per_token``) applied to a usage rebuilt
here in that one shape, so no provider-specific reading decides it, and checked against a floor
computed from the cost map's own per-token rates: LiteLLM has had provider-specific errors in
exactly these shapes (Gemini cache hits counted twice, a Vertex prompt count without its cached
part, Anthropic on Vertex going negative with large cache reads). A price below the floor is
raised to it and logged; a price is never negative.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.types.utils import (
    CacheCreationTokenDetails,
    CompletionTokensDetailsWrapper,
    PromptTokensDetailsWrapper,
    Usage,
)

from ..logs import log, log_once


@dataclass(frozen=True)
class CallUsage:
    """Every token one call was charged for, and their price (``cost``, US dollars; None for a
    model without a price). ``prompt_tokens`` includes ``cached_tokens`` (cache reads) and
    ``cache_creation_tokens`` (cache writes, ``cache_creation_1h_tokens`` of them at the one-hour
    TTL) and ``audio_prompt_tokens``; ``completion_tokens`` includes ``reasoning_tokens`` and
    ``audio_completion_tokens``. ``partial``: a stream cut before the provider reported its usage,
    so the prompt is our estimate and the completion what was generated."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_prompt_tokens: int = 0
    audio_completion_tokens: int = 0
    cost: float | None = None
    partial: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _count(obj: Any, key: str) -> int:
    value = _get(obj, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def read_usage(usage: Any, *, model: str = "") -> CallUsage:
    """The tokens of a LiteLLM usage (object or dict), unpriced. A part larger than its whole
    means the provider's whole left the part out (litellm#42093: a Vertex prompt count without
    its cached content): the whole is then the sum, and the repair is logged."""
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    ttl_details = _get(prompt_details, "cache_creation_token_details")
    prompt = _count(usage, "prompt_tokens")
    completion = _count(usage, "completion_tokens")
    cached = _count(prompt_details, "cached_tokens") or _count(usage, "cache_read_input_tokens")
    creation = (
        _count(prompt_details, "cache_creation_tokens")
        or _count(prompt_details, "cache_write_tokens")
        or _count(usage, "cache_creation_input_tokens")
    )
    creation_1h = min(_count(ttl_details, "ephemeral_1h_input_tokens"), creation)
    reasoning = _count(completion_details, "reasoning_tokens") or _count(usage, "reasoning_tokens")
    audio_prompt = _count(prompt_details, "audio_tokens")
    audio_completion = _count(completion_details, "audio_tokens")
    if cached + creation > prompt:
        log("WARNING", "usage_repaired", model=model, part="prompt", whole=prompt, parts=cached + creation)
        prompt += cached + creation
    if reasoning + audio_completion > completion:
        log("WARNING", "usage_repaired", model=model, part="completion", whole=completion, parts=reasoning)
        completion += reasoning + audio_completion
    return CallUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_creation_tokens=creation,
        cache_creation_1h_tokens=creation_1h,
        reasoning_tokens=reasoning,
        audio_prompt_tokens=min(audio_prompt, prompt - cached - creation),
        audio_completion_tokens=audio_completion,
    )


def priced(model: str, usage: CallUsage) -> CallUsage:
    """``usage`` with its cost: the same answer for the same tokens, wherever they came from."""
    return dataclasses.replace(usage, cost=cost_of(model, usage))


def cost_of(model: str, usage: CallUsage) -> float | None:
    """US dollars for ``usage``, never negative; None (logged once) for a model without a price."""
    parts = cost_parts(model, usage)
    return None if parts is None else parts[0] + parts[1]


def cost_parts(model: str, usage: CallUsage) -> tuple[float, float] | None:
    """``(prompt, completion)`` dollars: LiteLLM's cost, raised to the cost map's floor."""
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, usage_object=litellm_usage(usage))
        rates = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001 - LiteLLM raises several types for a model its cost map lacks
        log_once(f"cost:{model}", "WARNING", "model_cost_unknown", model=model, billed_by="tokens")
        return None
    floor_prompt, floor_completion = _floor(rates, usage)
    if prompt_cost < floor_prompt * (1 - 1e-9) or completion_cost < floor_completion * (1 - 1e-9):
        log_once(
            f"floor:{model}",
            "WARNING",
            "litellm_cost_below_floor",
            model=model,
            litellm_cost=prompt_cost + completion_cost,
            floor=floor_prompt + floor_completion,
        )
    return max(prompt_cost, floor_prompt, 0.0), max(completion_cost, floor_completion, 0.0)


def _rate(rates: Any, key: str, default: float = 0.0) -> float:
    value = rates.get(key)
    return float(value) if isinstance(value, int | float) and value >= 0 else default


def _floor(rates: Any, usage: CallUsage) -> tuple[float, float]:
    """The cost at the cost map's base rates alone (no long-context tier, no modality premium):
    what every correct price is at least. A rate the map lacks counts 0 here."""
    input_rate = _rate(rates, "input_cost_per_token")
    write_rate = _rate(rates, "cache_creation_input_token_cost")
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens
    prompt = (
        uncached * input_rate
        + usage.cached_tokens * _rate(rates, "cache_read_input_token_cost")
        + (usage.cache_creation_tokens - usage.cache_creation_1h_tokens) * write_rate
        + usage.cache_creation_1h_tokens * _rate(rates, "cache_creation_input_token_cost_above_1hr", write_rate)
    )
    return prompt, usage.completion_tokens * _rate(rates, "output_cost_per_token")


def litellm_usage(usage: CallUsage) -> Usage:
    """``usage`` in the one shape LiteLLM's cost function reads (OpenAI's, parts inside wholes)."""
    creation_5m = usage.cache_creation_tokens - usage.cache_creation_1h_tokens
    text_prompt = usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens - usage.audio_prompt_tokens
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=PromptTokensDetailsWrapper(
            cached_tokens=usage.cached_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            cache_creation_token_details=CacheCreationTokenDetails(
                ephemeral_5m_input_tokens=creation_5m, ephemeral_1h_input_tokens=usage.cache_creation_1h_tokens
            )
            if usage.cache_creation_tokens
            else None,
            audio_tokens=usage.audio_prompt_tokens,
            text_tokens=text_prompt,
        ),
        completion_tokens_details=CompletionTokensDetailsWrapper(
            reasoning_tokens=usage.reasoning_tokens,
            audio_tokens=usage.audio_completion_tokens,
            text_tokens=usage.completion_tokens - usage.reasoning_tokens - usage.audio_completion_tokens,
        ),
    )


def log_if_above(model: str, cost: float | None, worst_case: float | None) -> None:
    """A bill above its reservation's worst case is possible only if the estimate was wrong: say so."""
    if cost is not None and worst_case is not None and cost > worst_case * (1 + 1e-9):
        log("WARNING", "cost_above_reservation", model=model, cost=cost, worst_case=worst_case)
