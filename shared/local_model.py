"""The embedded local model (``local/...``): chat that works offline with no provider key.

A LiteLLM ``CustomLLM`` provider, so the whole LiteLLM pipeline (callbacks, usage, cost)
runs as it does for a real provider. Answers are deterministic; token counts are real
(LiteLLM's bundled tokenizer). Enabled only when a ``local/`` model is in ``CHAT_MODELS``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

PROVIDER = "local"
# Priced like a small hosted model, so that local billing shows real amounts.
_INPUT_COST_PER_TOKEN = 0.15e-6
_OUTPUT_COST_PER_TOKEN = 0.60e-6
_TOKENIZER_MODEL = "gpt-4o-mini"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def answer_for(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer: a short echo of the last user message."""
    said = " ".join(_last_user_text(messages).split())
    if len(said) > 200:
        said = said[:200] + "..."
    return f"This is the local demo model. You said: {said}" if said else "This is the local demo model."


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


class LocalModel(CustomLLM):
    """Deterministic echo model; ``delay_s`` spaces streamed pieces so streaming is visible."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def _usage(self, messages: list[dict[str, Any]], text: str) -> Usage:
        prompt = litellm.token_counter(model=_TOKENIZER_MODEL, messages=messages)
        completion = litellm.token_counter(model=_TOKENIZER_MODEL, text=text, count_response_tokens=True)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        model_response: ModelResponse = kwargs["model_response"]
        text = answer_for(messages)
        model_response.choices[0].message.content = text
        model_response.choices[0].finish_reason = "stop"
        model_response.model = model
        model_response.usage = self._usage(messages, text)  # type: ignore[attr-defined]
        return model_response

    def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        text = answer_for(messages)
        usage = self._usage(messages, text)
        pieces = _pieces(text)
        for index, piece in enumerate(pieces):
            if self.delay_s and index:
                time.sleep(self.delay_s)
            last = index == len(pieces) - 1
            yield {
                "text": piece,
                "is_finished": last,
                "finish_reason": "stop" if last else "",
                "index": 0,
                "tool_use": None,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                }
                if last
                else None,
            }


def register_local_models(models: tuple[str, ...], delay_s: float) -> None:
    """Register the provider and price its models (call once per instance)."""
    local = [m for m in models if m.startswith(f"{PROVIDER}/")]
    if not local:
        return
    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER],
        {"provider": PROVIDER, "custom_handler": LocalModel(delay_s)},
    ]
    litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]  # LiteLLM leaves it unannotated
    litellm.register_model(
        {
            model: {
                "input_cost_per_token": _INPUT_COST_PER_TOKEN,
                "output_cost_per_token": _OUTPUT_COST_PER_TOKEN,
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "cache_read_input_token_cost": 0.0,
                "cache_creation_input_token_cost": 0.0,
            }
            for model in local
        }
    )
