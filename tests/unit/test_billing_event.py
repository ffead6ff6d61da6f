"""Lago events built from a call's usage: pure functions (no server)."""

from __future__ import annotations

import pytest
from litellm.types.utils import ModelResponse, Usage

from shared.billing_event import CallUsage, build_event, format_timestamp, price, usage_from_response


def test_an_event_carries_the_call_id_payer_code_timestamp_and_token_counts() -> None:
    usage = CallUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7, response_cost=0.25)
    event = build_event(call_id="c1", timestamp="1.000", payer="p1", code="llm", model="m", usage=usage)
    assert event == {
        "transaction_id": "c1",
        "external_subscription_id": "p1",
        "code": "llm",
        "timestamp": "1.000",
        "properties": {
            "model": "m",
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "response_cost": 0.25,
        },
    }


def test_optional_properties_appear_only_when_known_and_never_as_null_or_bool() -> None:
    bare = build_event(call_id="c", timestamp="t", payer="p", code="x", model="m", usage=CallUsage(1, 1, 2))
    assert set(bare["properties"]) == {"model", "prompt_tokens", "completion_tokens", "total_tokens"}
    full = CallUsage(1, 1, 2, cached_tokens=5, reasoning_tokens=6, response_cost=0.0, partial=True)
    properties = build_event(call_id="c", timestamp="t", payer="p", code="x", model="m", usage=full)["properties"]
    assert properties["cached_tokens"] == 5 and properties["reasoning_tokens"] == 6
    assert properties["partial"] == "true"  # Lago's properties take strings and numbers only
    assert all(isinstance(value, str | int | float) and not isinstance(value, bool) for value in properties.values())


def test_the_timestamp_keeps_milliseconds_and_is_the_same_string_on_every_resend() -> None:
    assert format_timestamp(1_700_000_000.1234) == "1700000000.123"


# LiteLLM's own types make pydantic warn about ReadOnly TypedDict items when first built.
@pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")
def test_usage_is_read_from_a_litellm_response_and_priced_from_the_cost_map() -> None:
    response = ModelResponse(usage=Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))
    usage = usage_from_response(response, "openai/gpt-4o-mini")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 20, 30)
    assert usage.response_cost == price("openai/gpt-4o-mini", 10, 20)
    assert usage.response_cost is not None and usage.response_cost > 0


def test_usage_of_a_dict_response_and_a_given_cost_are_taken_as_they_are() -> None:
    class Response:
        usage = {"prompt_tokens": 2, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 1}}

    usage = usage_from_response(Response(), "any", cost=0.5, partial=True)
    assert (usage.total_tokens, usage.cached_tokens, usage.response_cost, usage.partial) == (5, 1, 0.5, True)


def test_a_model_missing_from_the_cost_map_has_no_price_rather_than_zero() -> None:
    assert price("openai/not-in-cost-map", 10, 10) is None
    assert usage_from_response(None, "openai/not-in-cost-map").response_cost is None
