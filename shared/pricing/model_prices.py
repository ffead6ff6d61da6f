"""Prices for models LiteLLM's bundled cost map does not know (``CHAT_MODEL_PRICES``).

The value is a JSON object keyed by the LiteLLM model name, each with LiteLLM's own per-token
keys, in US dollars per token::

    {"openai/my-finetune": {"input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06}}

They are registered with ``litellm.register_model`` at cold start, so ``pricing.usage`` (the
event's ``response_cost``) and the budget's reservations use them; an operator's price also
replaces the bundled one; cache reads and writes are billed at the input price. When money
depends on the cost (a budget, or a Lago metric that bills ``response_cost``), every
allowlisted model must have a positive price: an unpriced model would cost 0 and be free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

_KEYS = ("input_cost_per_token", "output_cost_per_token")


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per token, as LiteLLM's cost map counts them."""

    input_cost_per_token: float
    output_cost_per_token: float


def parse_model_prices(raw: str) -> tuple[Mapping[str, ModelPrice], list[str]]:
    """The prices in ``raw`` (JSON), and what is wrong with it (each problem named)."""
    if not raw.strip():
        return MappingProxyType({}), []
    try:
        data = json.loads(raw)
    except ValueError:
        return MappingProxyType({}), ["CHAT_MODEL_PRICES must be a JSON object"]
    if not isinstance(data, dict):
        return MappingProxyType({}), ["CHAT_MODEL_PRICES must be a JSON object"]
    prices: dict[str, ModelPrice] = {}
    errors = []
    for model, entry in data.items():
        price = _price(entry)
        if price is None:
            errors.append(f"CHAT_MODEL_PRICES[{model[:100]!r}] needs {' and '.join(_KEYS)}: numbers >= 0, not both 0")
        else:
            prices[model] = price
    return MappingProxyType(prices), errors


def _price(entry: Any) -> ModelPrice | None:
    if not isinstance(entry, dict) or set(entry) != set(_KEYS):
        return None
    values = [entry[key] for key in _KEYS]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in values):
        return None
    if sum(values) <= 0:
        return None
    return ModelPrice(float(values[0]), float(values[1]))


def register_prices(prices: Mapping[str, ModelPrice]) -> None:
    """Put the operator's prices into LiteLLM's cost map (once per instance)."""
    if not prices:
        return
    import litellm

    litellm.register_model(
        {
            model: {
                "input_cost_per_token": price.input_cost_per_token,
                "output_cost_per_token": price.output_cost_per_token,
                "litellm_provider": model.partition("/")[0] if "/" in model else "openai",
                "mode": "chat",
                # The operator priced input and output only: a cache read or write the provider
                # reports is billed as the input it is, never at 0 (LiteLLM's default).
                "cache_read_input_token_cost": price.input_cost_per_token,
                "cache_creation_input_token_cost": price.input_cost_per_token,
            }
            for model, price in prices.items()
        }
    )


def unpriced_models(models: tuple[str, ...]) -> tuple[str, ...]:
    """The models LiteLLM would bill at 0: missing from its cost map, or priced 0 there."""
    import litellm

    unpriced = []
    for model in models:
        try:
            prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
        except Exception:  # noqa: BLE001 - LiteLLM raises several types for "not in the cost map"
            unpriced.append(model)
            continue
        if prompt + completion <= 0:
            unpriced.append(model)
    return tuple(unpriced)
