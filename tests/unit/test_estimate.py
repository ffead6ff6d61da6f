"""A request's estimate: every billed input counted, at its documented bound, without reaching
anything the caller names; and a cut stream's bill never below it (pure functions, no server)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import zlib
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import pytest
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from shared.chat_request import ChatRequest, parse_chat_request
from shared.pricing.estimate import GEMINI_TILE_TOKENS, IMAGE_TOKENS, estimate, partial_usage, prompt_estimate
from shared.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
MODELS = "openai/gpt-4o-mini,openai/o4-mini,anthropic/claude-sonnet-4-5,gemini/gemini-2.5-flash"
SETTINGS = Settings.from_env({"CHAT_MODELS": MODELS, "CHAT_MAX_TOKENS": "4096"})


def parse(text: str = "hello", model: str = "openai/gpt-4o-mini", **body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": text}])
    return parse_chat_request(json.dumps({"model": model, **body}).encode(), SETTINGS)


def png(width: int, height: int) -> str:
    """A real PNG of that size (blank, so a few hundred bytes), as a data: URI."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + bytes(width) for _ in range(height)))
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def with_image(url: str, detail: str = "high", text: str = "what is this") -> list[dict[str, Any]]:
    image = {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    return [{"role": "user", "content": [{"type": "text", "text": text}, image]}]


@pytest.fixture
def resolved() -> Iterator[list[str]]:
    """Every host name looked up while the test runs (each lookup fails: nothing is reached)."""
    seen: list[str] = []

    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        raise OSError(f"no lookups in this test: {host}")

    original = socket.getaddrinfo
    socket.getaddrinfo = refuse  # type: ignore[assignment]
    try:
        yield seen
    finally:
        socket.getaddrinfo = original  # type: ignore[assignment]


def test_a_180_kb_prediction_counts_as_prompt() -> None:
    # Seen: a 180 KB prediction.content counted as 8 prompt tokens.
    prediction = {"type": "content", "content": "lorem ipsum dolor sit amet " * 6700}
    plain, predicted = prompt_estimate(parse()), prompt_estimate(parse(prediction=prediction))
    assert predicted - plain > 30_000


def test_tools_schemas_and_prediction_all_count() -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "word " * 3000, "parameters": {}}}
    schema = {"type": "object", "properties": {f"field{i}": {"type": "string"} for i in range(300)}}
    response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    plain = prompt_estimate(parse())
    assert prompt_estimate(parse(tools=[tool] * 100)) - plain > 300_000
    assert prompt_estimate(parse(response_format=response_format)) - plain > 900


@pytest.mark.parametrize(
    ("model", "detail", "least"),
    [
        ("openai/gpt-4o-mini", "high", IMAGE_TOKENS["openai"]["high"]),
        ("openai/gpt-4o-mini", "auto", IMAGE_TOKENS["openai"]["auto"]),
        ("openai/gpt-4o-mini", "low", IMAGE_TOKENS["openai"]["low"]),
        ("anthropic/claude-sonnet-4-5", "high", IMAGE_TOKENS["anthropic"]["high"]),
    ],
)
def test_an_https_image_counts_at_its_provider_s_bound_without_a_lookup(
    resolved: list[str], model: str, detail: str, least: int
) -> None:
    # Seen: a ~40k-token text with an image_url at detail high was counted 0 (LiteLLM's counter
    # raised on the image), after a DNS query for the caller's image host.
    text = "word " * 40_000
    request = parse(model=model, messages=with_image("https://images.example.com/cat.png", detail, text))
    assert prompt_estimate(request) >= prompt_estimate(parse(text, model=model)) + least
    assert resolved == []


def test_an_inline_gemini_image_counts_its_768_px_tiles() -> None:
    small = prompt_estimate(parse(model="gemini/gemini-2.5-flash", messages=with_image(png(300, 300))))
    large = prompt_estimate(parse(model="gemini/gemini-2.5-flash", messages=with_image(png(7680, 3840))))
    assert large - small >= 10 * 5 * GEMINI_TILE_TOKENS - IMAGE_TOKENS["gemini"]["high"]


def test_audio_and_files_count_one_token_per_base64_character() -> None:
    data = base64.b64encode(b"\0" * 30_000).decode()
    audio = [{"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]
    request = parse(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": audio}])
    assert prompt_estimate(request) >= len(data)


def test_other_providers_text_is_counted_with_a_margin_over_openai_s_tokenizer() -> None:
    text = "a sentence of ordinary English words " * 200
    openai = prompt_estimate(parse(text))
    assert prompt_estimate(parse(text, model="anthropic/claude-sonnet-4-5")) >= openai * 1.2


def test_the_completion_is_the_one_limit_for_every_choice() -> None:
    assert estimate(parse(max_tokens=40, n=3)).completion_tokens == 120
    assert estimate(parse(max_completion_tokens=40)).completion_tokens == 40
    assert estimate(parse()).completion_tokens == 4096  # CHAT_MAX_TOKENS when none is sent


# --- a stream cut short -----------------------------------------------------------------------


def chunks(words: list[str]) -> list[ModelResponseStream]:
    return [ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(content=word + " "))]) for word in words]


def test_a_cut_stream_bills_the_whole_estimated_prompt_and_what_was_generated() -> None:
    # Seen: 100 tool definitions, closed before the end, billed 16 prompt tokens (read to the end: ~41,000).
    tool = {"type": "function", "function": {"name": "f", "description": "word " * 400, "parameters": {}}}
    request = parse(tools=[tool] * 100)
    usage = partial_usage(request, chunks(["one", "two", "three"]))
    assert usage.partial and usage.prompt_tokens == prompt_estimate(request) > 40_000
    assert 3 <= usage.completion_tokens <= 10
    assert usage.cost is not None and usage.cost > usage.prompt_tokens * 0.15e-6


def test_a_cut_stream_with_an_image_bills_at_least_the_image_s_bound(resolved: list[str]) -> None:
    request = parse(messages=with_image("https://images.example.com/cat.png", "high", "word " * 40_000))
    usage = partial_usage(request, chunks(["a"]))
    assert usage.prompt_tokens >= 40_000 + IMAGE_TOKENS["openai"]["high"]
    assert resolved == []


def test_a_cut_stream_of_a_model_reasoning_unseen_bills_its_completion_limit() -> None:
    request = parse(model="openai/o4-mini", max_completion_tokens=2000)
    assert partial_usage(request, chunks(["a"])).completion_tokens == 2000
