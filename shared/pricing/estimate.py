"""The most a request can cost, counted before the call from what the caller sent.

``estimate(request)`` is the one count the budget's reservation, the TPM rate limit and a cut
stream's partial bill use. The prompt is every input the provider will bill: the messages'
text, the tool definitions, the ``response_format`` schema, ``prediction``, and each media part
at its documented bound for the provider and detail level. The completion is the limit the
provider gets (LiteLLM sends the one limit we pass under the provider's own name; the tests
show it per provider family) for each of the ``n`` choices.

Counting never raises and never fetches or resolves anything the caller names: LiteLLM's token
counter gets the text alone (given an image it resolved the image's host), its HuggingFace
tokenizer downloads are off, a media part is bounded from its own bytes, and whatever cannot be
counted is counted at its upper bound, one token per UTF-8 byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.litellm_core_utils.token_counter import estimate_image_tokens

from ..chat_request import ChatRequest
from .usage import CallUsage, cost_parts, priced

# The tokenizer LiteLLM counts with for every model is OpenAI's; other providers' tokenizers cut
# the same text into more tokens (the Claude tokenizer LiteLLM bundles: 7% more on this
# project's README, 16% more on Python source). Their text counts are raised by this much.
OTHER_TOKENIZER_MARGIN = 1.25
_OPENAI_FAMILY = frozenset({"openai", "azure", "text-completion-openai"})
# Images at their documented bounds, by provider family and detail: OpenAI's largest counts
# (gpt-4o-mini: 2,833 a low-detail image, 2,833 + 5,667 per 512-px tile, 8 tiles at most, at
# high or auto); Anthropic's (images are scaled to fit 4,784 tokens on the high-resolution
# models, 1,568 on the others; detail is ignored); Gemini's (258 per 768-px tile, 1,120 at the
# highest media resolution). LiteLLM's own estimate (``estimate_image_tokens``, from the inline
# image's header, never fetching) raises a bound it knows to be higher for a model.
IMAGE_TOKENS = {
    "openai": {"low": 2833, "high": 2833 + 5667 * 8, "auto": 2833 + 5667 * 8},
    "anthropic": {"low": 4784, "high": 4784, "auto": 4784},
    "gemini": {"low": 1120, "high": 1120, "auto": 1120},
}
GEMINI_TILE_PX, GEMINI_TILE_TOKENS = 768, 258
# Audio, files and unreadable images: one token per character of their base64 text, far above
# any provider's count (capped at the model's context window: a longer prompt is refused, unbilled).
CHARS_PER_MEDIA_TOKEN = 1

litellm.disable_hf_tokenizer_download = True  # token_counter must not download tokenizers (network)


@dataclass(frozen=True)
class Estimate:
    """What a request may use at most: ``prompt_tokens`` and ``completion_tokens`` (all choices)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """What the TPM limit counts, as OpenAI does before a call: prompt plus the completion limit."""
        return self.prompt_tokens + self.completion_tokens


def estimate(request: ChatRequest) -> Estimate:
    """The request's prompt bound and completion limit."""
    return Estimate(prompt_estimate(request), request.max_tokens * request.n)


def family(model: str) -> str:
    """Whose tokens and media rules apply: ``openai``, ``anthropic``, ``gemini`` or ``other``."""
    try:
        name, provider, _, _ = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - a provider LiteLLM does not know
        return "other"
    if provider in _OPENAI_FAMILY:
        return "openai"
    if provider == "anthropic" or (provider.startswith("vertex_ai") and name.startswith("claude")):
        return "anthropic"
    if provider == "gemini" or (provider.startswith("vertex_ai") and name.startswith("gemini")):
        return "gemini"
    return "other"


def prompt_estimate(request: ChatRequest) -> int:
    """Every prompt token the provider may bill for ``request``, counted without fetching."""
    kind = family(request.model)
    text = _text_tokens(request)
    if kind != "openai":
        text = math.ceil(text * OTHER_TOKENIZER_MARGIN)
    return text + sum(_media_tokens(request.model, kind, part) for part in _media_parts(request.messages))


def _text_tokens(request: ChatRequest) -> int:
    messages = [_without_media(message) for message in request.messages]
    tools = request.params.get("tools")
    extra = [request.params.get(key) for key in ("response_format", "prediction")]
    try:
        tokens = litellm.token_counter(model=request.model, messages=messages, tools=tools)
        for value in extra:
            if value is not None:
                tokens += litellm.token_counter(model=request.model, text=json.dumps(value, ensure_ascii=False))
        return int(tokens)
    except Exception:  # noqa: BLE001 - a shape LiteLLM cannot count: its bytes bound it
        return _utf8_bytes([messages, tools, *extra])


def _utf8_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _without_media(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    text = [part for part in content if isinstance(part, dict) and part.get("type") in ("text", "refusal")]
    return {**message, "content": text or ""}


def _media_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        part
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") not in ("text", "refusal")
    ]


def _media_tokens(model: str, kind: str, part: dict[str, Any]) -> int:
    """One media part's bound; a part this cannot read counts as its whole JSON's bytes."""
    try:
        if part.get("type") == "image_url":
            return _image_tokens(model, kind, part["image_url"]["url"], part["image_url"].get("detail", "auto"))
        body = part.get("input_audio", {}).get("data") if part.get("type") == "input_audio" else None
        body = body if body is not None else part.get("file", {}).get("file_data")
        return _capped(model, len(body) // CHARS_PER_MEDIA_TOKEN)
    except Exception:  # noqa: BLE001 - never raise from counting
        return _capped(model, _utf8_bytes(part))


def _capped(model: str, tokens: int) -> int:
    try:
        window = litellm.get_model_info(model).get("max_input_tokens")
    except Exception:  # noqa: BLE001 - a model the cost map lacks: no known window
        window = None
    return min(tokens, window) if isinstance(window, int) and window > 0 else tokens


def _image_tokens(model: str, kind: str, url: str, detail: str) -> int:
    bounds = IMAGE_TOKENS.get(kind)
    bound = max(table[detail] for table in IMAGE_TOKENS.values()) if bounds is None else bounds[detail]
    if kind in ("gemini", "other"):
        tiles = _gemini_tiles(url)
        if tiles is None and url.startswith("data:"):
            return _capped(model, max(bound, len(url) // CHARS_PER_MEDIA_TOKEN))  # no readable size
        bound = max(bound, (tiles or 1) * GEMINI_TILE_TOKENS)
    return max(bound, estimate_image_tokens(model, url, detail))


def _gemini_tiles(url: str) -> int | None:
    """768-px tiles of an inline image, from its header (no decoding of the pixels)."""
    from litellm.litellm_core_utils.token_counter import _inline_image_dimensions

    dimensions = _inline_image_dimensions(url)
    if dimensions is None:
        return None
    width, height = dimensions
    return math.ceil(width / GEMINI_TILE_PX) * math.ceil(height / GEMINI_TILE_PX)


def worst_case_cost(model: str, tokens: Estimate) -> float | None:
    """US dollars ``tokens`` may cost at most, or None for a model without a price.

    Each prompt token at the dearest rate it can be billed at (plain, audio, or a cache write
    at either TTL, which the caller can ask for), each completion token at the dearest of
    text, reasoning and audio; long-context tiers by the estimated prompt."""
    prompt, completion = tokens.prompt_tokens, tokens.completion_tokens
    shapes = [
        CallUsage(prompt, completion),
        CallUsage(prompt, completion, cache_creation_tokens=prompt, reasoning_tokens=completion),
        CallUsage(
            prompt,
            completion,
            cache_creation_tokens=prompt,
            cache_creation_1h_tokens=prompt,
            audio_completion_tokens=completion,
        ),
        CallUsage(prompt, completion, audio_prompt_tokens=prompt),
    ]
    costs = [cost_parts(model, shape) for shape in shapes]
    if any(parts is None for parts in costs):
        return None
    return max(parts[0] for parts in costs if parts) + max(parts[1] for parts in costs if parts)


def partial_usage(request: ChatRequest, sent: list[Any]) -> CallUsage:
    """A stream cut before the provider's usage chunk, priced: the prompt at the estimate the
    reservation used (never less), the completion as counted from the chunks sent. A model that
    reasons unseen (``hides_reasoning``) may have spent its whole limit before the first chunk:
    its completion counts at the limit."""
    prompt = prompt_estimate(request)
    limit = request.max_tokens * request.n
    completion = limit if hides_reasoning(request) else min(_generated_tokens(request, sent), limit)
    return priced(request.model, CallUsage(prompt, completion, partial=True))


def hides_reasoning(request: ChatRequest) -> bool:
    """Whether the model may bill reasoning tokens a stream does not show: OpenAI's reasoning
    models and Gemini's thinking ones always may; Claude only thinks when asked (``reasoning_effort``)."""
    try:
        reasons = bool(litellm.supports_reasoning(model=request.model))
    except Exception:  # noqa: BLE001 - a model LiteLLM does not know: no reasoning it could hide
        return False
    return reasons and (family(request.model) != "anthropic" or "reasoning_effort" in request.params)


def _generated_tokens(request: ChatRequest, sent: list[Any]) -> int:
    try:
        rebuilt = litellm.stream_chunk_builder(sent)  # no messages: the prompt is ours to count
        tokens = int(rebuilt.usage.completion_tokens)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - chunks LiteLLM cannot rebuild: their bytes bound them
        tokens = sum(_utf8_bytes([choice.delta.model_dump() for choice in chunk.choices]) for chunk in sent)
    return tokens if family(request.model) == "openai" else math.ceil(tokens * OTHER_TOKENIZER_MARGIN)
