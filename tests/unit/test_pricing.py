"""A call's price: each provider's usage as LiteLLM's own transformation reads the provider's JSON
answer, priced by ``pricing`` and compared with the price computed here from the providers'
published per-token figures (not from LiteLLM's cost map, which is what is under test).

Published prices, US dollars per million tokens (the providers' pricing pages):
- Anthropic Claude Sonnet 4.5: input 3, output 15 (thinking included), cache read 0.30 (0.1x),
  cache write 3.75 for the 5-minute TTL (1.25x) and 6 for the 1-hour TTL (2x); the same on Vertex AI.
- Gemini 2.5 Flash: input 0.30 (text), 1.00 (audio); output 2.50, thinking included; cached
  input 0.03. Cached tokens are inside ``promptTokenCount``; ``thoughtsTokenCount`` is beside
  ``candidatesTokenCount`` and billed as output.
- Gemini 2.5 Pro: input 1.25, output 10, cached 0.125 up to 200k prompt tokens; 2.50, 15 and
  0.25 above.
- OpenAI gpt-4o-mini: input 0.15, cached input 0.075 (inside ``prompt_tokens``), output 0.60;
  o4-mini: 1.10, 0.275, 4.40 (reasoning tokens inside ``completion_tokens``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import httpx
import litellm
import pytest
from litellm.litellm_core_utils.litellm_logging import Logging
from litellm.llms.anthropic.chat.transformation import AnthropicConfig
from litellm.llms.openai.chat.gpt_transformation import OpenAIGPTConfig
from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexGeminiConfig
from litellm.types.utils import ModelResponse, Usage

from shared.billing import PendingEvents
from shared.billing_event import CallContext
from shared.pricing.estimate import Estimate, worst_case_cost
from shared.pricing.usage import CallUsage, priced, read_usage

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # LiteLLM's pydantic types warn when first built
M = 1e-6  # dollars per million tokens -> per token


def transformed(config: Any, model: str, answer: dict[str, Any]) -> Any:
    """The usage LiteLLM's provider transformation makes of the provider's JSON answer."""
    logging_obj = Logging(
        model=model,
        messages=[],
        stream=False,
        call_type="completion",
        litellm_call_id="test",
        start_time=datetime.now(),
        function_id="test",
    )
    logging_obj.optional_params = {}
    logging_obj.model_call_details = {"litellm_params": {}}
    response = config.transform_response(
        model=model,
        raw_response=httpx.Response(200, json=answer),
        model_response=ModelResponse(),
        logging_obj=logging_obj,
        request_data={},
        messages=[{"role": "user", "content": "hello"}],
        optional_params={},
        litellm_params={},
        encoding=None,
    )
    return response.usage


def anthropic_usage(**usage: Any) -> Any:
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "usage": usage,
    }
    return transformed(AnthropicConfig(), "claude-sonnet-4-5", answer)


def gemini_usage(model: str, **metadata: Any) -> Any:
    answer = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hello"}]}, "finishReason": "STOP"}],
        "usageMetadata": metadata,
        "modelVersion": model,
    }
    return transformed(VertexGeminiConfig(), model, answer)


def openai_usage(**usage: Any) -> Any:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return transformed(OpenAIGPTConfig(), "gpt-4o-mini", answer)


def cost(model: str, usage: Any) -> float:
    result = priced(model, read_usage(usage)).cost
    assert result is not None
    return result


# --- each provider's usage shape, at its published price ----------------------------------------

ANTHROPIC_CACHED = {
    "input_tokens": 1000,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 10000,
    "output_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500},
}
ANTHROPIC_PRICE = (1000 * 3 + 10000 * 0.30 + 500 * 3.75 + 1500 * 6 + 500 * 15) * M


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-5", "vertex_ai/claude-sonnet-4-5"])
def test_anthropic_cache_reads_and_writes_by_ttl_are_billed_at_their_published_multiples(model: str) -> None:
    usage = anthropic_usage(**ANTHROPIC_CACHED)
    tokens = read_usage(usage)
    assert (tokens.prompt_tokens, tokens.cached_tokens, tokens.cache_creation_tokens) == (13000, 10000, 2000)
    assert tokens.cache_creation_1h_tokens == 1500
    assert cost(model, usage) == pytest.approx(ANTHROPIC_PRICE)


def test_anthropic_on_vertex_with_a_large_cache_read_is_positive_and_exact() -> None:
    # litellm#27745: a large cache read made the price negative on Vertex AI.
    usage = anthropic_usage(input_tokens=10, cache_read_input_tokens=150_000, output_tokens=100)
    assert cost("vertex_ai/claude-sonnet-4-5", usage) == pytest.approx((10 * 3 + 150_000 * 0.30 + 100 * 15) * M)


GEMINI_CACHED = {
    "promptTokenCount": 10000,
    "cachedContentTokenCount": 8000,
    "candidatesTokenCount": 200,
    "thoughtsTokenCount": 300,
    "totalTokenCount": 10500,
}


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("gemini/gemini-2.5-flash", (2000 * 0.30 + 8000 * 0.03 + 500 * 2.50) * M),
        ("vertex_ai/gemini-2.5-flash", (2000 * 0.30 + 8000 * 0.03 + 500 * 2.50) * M),
        ("gemini/gemini-2.5-pro", (2000 * 1.25 + 8000 * 0.125 + 500 * 10) * M),
        ("vertex_ai/gemini-2.5-pro", (2000 * 1.25 + 8000 * 0.125 + 500 * 10) * M),
    ],
)
def test_gemini_cached_tokens_count_once_inside_the_prompt_and_thoughts_as_output(model: str, published: float) -> None:
    # litellm#14849: cache hits were counted twice (as prompt and as cache read).
    for details in ({}, {"promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10000}]}):
        usage = gemini_usage(model.partition("/")[2], **GEMINI_CACHED, **details)
        tokens = read_usage(usage)
        assert (tokens.prompt_tokens, tokens.cached_tokens) == (10000, 8000)
        assert (tokens.completion_tokens, tokens.reasoning_tokens) == (500, 300)
        assert cost(model, usage) == pytest.approx(published)


def test_a_prompt_count_that_left_its_cached_part_out_is_billed_with_it() -> None:
    # litellm#42093: a Vertex prompt count without its cached content; cached > prompt shows it.
    usage = Usage(prompt_tokens=2000, completion_tokens=500, total_tokens=2500)
    usage.prompt_tokens_details = litellm.types.utils.PromptTokensDetailsWrapper(cached_tokens=8000)
    tokens = read_usage(usage)
    assert (tokens.prompt_tokens, tokens.cached_tokens) == (10000, 8000)
    assert cost("vertex_ai/gemini-2.5-flash", usage) == pytest.approx((2000 * 0.30 + 8000 * 0.03 + 500 * 2.50) * M)


def test_gemini_long_context_tier_applies_above_200k_prompt_tokens() -> None:
    usage = gemini_usage("gemini-2.5-pro", promptTokenCount=250_000, candidatesTokenCount=500, totalTokenCount=250_500)
    assert cost("gemini/gemini-2.5-pro", usage) == pytest.approx((250_000 * 2.50 + 500 * 15) * M)


def test_gemini_audio_input_is_billed_at_the_audio_rate() -> None:
    modalities = [{"modality": "TEXT", "tokenCount": 600}, {"modality": "AUDIO", "tokenCount": 400}]
    usage = gemini_usage(
        "gemini-2.5-flash",
        promptTokenCount=1000,
        candidatesTokenCount=200,
        totalTokenCount=1200,
        promptTokensDetails=modalities,
    )
    assert read_usage(usage).audio_prompt_tokens == 400
    assert cost("gemini/gemini-2.5-flash", usage) == pytest.approx((600 * 0.30 + 400 * 1.00 + 200 * 2.50) * M)


def test_openai_cached_input_is_inside_prompt_tokens() -> None:
    usage = openai_usage(
        prompt_tokens=2000,
        completion_tokens=100,
        total_tokens=2100,
        prompt_tokens_details={"cached_tokens": 1024},
    )
    assert cost("openai/gpt-4o-mini", usage) == pytest.approx((976 * 0.15 + 1024 * 0.075 + 100 * 0.60) * M)


def test_openai_reasoning_tokens_are_billed_as_output() -> None:
    usage = openai_usage(
        prompt_tokens=2000,
        completion_tokens=500,
        total_tokens=2500,
        prompt_tokens_details={"cached_tokens": 1024},
        completion_tokens_details={"reasoning_tokens": 400},
    )
    assert read_usage(usage).reasoning_tokens == 400
    assert cost("openai/o4-mini", usage) == pytest.approx((976 * 1.10 + 1024 * 0.275 + 500 * 4.40) * M)


# --- one price, whoever reads the usage ---------------------------------------------------------


def test_the_callback_s_record_and_the_request_s_record_are_priced_alike() -> None:
    """The handler's usage and LiteLLM's callback record give the same event: no thread's arrival
    order decides a price (once a stream billed the callback's $0.0306 or the fallback's $0.1641)."""
    response = ModelResponse(usage=anthropic_usage(**ANTHROPIC_CACHED))
    call = CallContext("chatcmpl-1", "1.000", "uid", "payer", "anthropic/claude-sonnet-4-5")
    pending = PendingEvents("llm")
    pending.expect(call)
    pending.collect(call.call_id, response)
    event = pending.take(call.call_id)
    assert event is not None
    assert event["properties"]["response_cost"] == pytest.approx(ANTHROPIC_PRICE)
    assert event["properties"]["cached_tokens"] == 10000 and event["properties"]["cache_creation_tokens"] == 2000


def test_a_price_is_never_negative_nor_below_the_cost_map_s_own_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = CallUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    honest = priced("openai/gpt-4o-mini", usage).cost
    monkeypatch.setattr(litellm, "cost_per_token", lambda **_: (-1.0, -1.0))  # a cost function gone wrong
    floor = priced("openai/gpt-4o-mini", usage).cost
    assert floor == pytest.approx(honest) and floor is not None and floor > 0


def test_a_model_without_a_price_has_none_rather_than_zero() -> None:
    assert priced("openai/not-in-cost-map", CallUsage(10, 10)).cost is None
    assert worst_case_cost("openai/not-in-cost-map", Estimate(10, 10)) is None


# --- the worst case bounds every bill of the same tokens ----------------------------------------


@pytest.mark.parametrize(
    "model",
    ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro", "openai/o4-mini"],
)
def test_the_worst_case_is_at_least_any_bill_of_as_many_tokens(model: str) -> None:
    prompt, completion = 250_000, 4000
    worst = worst_case_cost(model, Estimate(prompt, completion))
    assert worst is not None
    shapes = [
        CallUsage(prompt, completion),
        CallUsage(prompt, completion, cached_tokens=prompt // 2, reasoning_tokens=completion),
        CallUsage(prompt, completion, cache_creation_tokens=prompt, cache_creation_1h_tokens=prompt),
        CallUsage(prompt, completion, cache_creation_tokens=prompt, audio_completion_tokens=completion),
        CallUsage(prompt, completion, audio_prompt_tokens=prompt),
    ]
    for shape in shapes:
        bill = priced(model, shape).cost
        assert bill is not None and bill <= worst * (1 + 1e-9), shape


def test_the_worst_case_of_an_anthropic_prompt_is_a_one_hour_cache_write() -> None:
    worst = worst_case_cost("anthropic/claude-sonnet-4-5", Estimate(10_000, 1000))
    assert worst == pytest.approx((10_000 * 6 + 1000 * 15) * M)  # the caller may ask for the 1h TTL
