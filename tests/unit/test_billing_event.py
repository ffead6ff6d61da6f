"""Lago events built from a call's priced usage: pure functions (no server)."""

from __future__ import annotations

from shared.billing_event import build_event, format_timestamp
from shared.pricing.usage import CallUsage


def test_an_event_carries_the_call_id_payer_code_timestamp_tokens_and_their_parts() -> None:
    usage = CallUsage(prompt_tokens=30, completion_tokens=4, cached_tokens=20, cache_creation_tokens=5, cost=0.25)
    event = build_event(call_id="c1", timestamp="1.000", payer="p1", code="llm", model="m", usage=usage)
    assert event == {
        "transaction_id": "c1",
        "external_subscription_id": "p1",
        "code": "llm",
        "timestamp": "1.000",
        "properties": {
            "model": "m",
            "prompt_tokens": 30,
            "completion_tokens": 4,
            "total_tokens": 34,
            "cached_tokens": 20,
            "cache_creation_tokens": 5,
            "reasoning_tokens": 0,
            "response_cost": 0.25,
        },
    }


def test_rarer_parts_appear_only_when_known_and_no_value_is_null_or_bool() -> None:
    bare = build_event(call_id="c", timestamp="t", payer="p", code="x", model="m", usage=CallUsage(1, 1))
    assert "response_cost" not in bare["properties"] and "partial" not in bare["properties"]
    full = CallUsage(
        10,
        8,
        cache_creation_tokens=4,
        cache_creation_1h_tokens=3,
        reasoning_tokens=6,
        audio_prompt_tokens=2,
        audio_completion_tokens=1,
        cost=0.0,
        partial=True,
    )
    properties = build_event(call_id="c", timestamp="t", payer="p", code="x", model="m", usage=full)["properties"]
    assert properties["cache_creation_1h_tokens"] == 3 and properties["reasoning_tokens"] == 6
    assert (properties["audio_prompt_tokens"], properties["audio_completion_tokens"]) == (2, 1)
    assert properties["partial"] == "true"  # Lago's properties take strings and numbers only
    assert all(isinstance(value, str | int | float) and not isinstance(value, bool) for value in properties.values())


def test_the_timestamp_keeps_milliseconds_and_is_the_same_string_on_every_resend() -> None:
    assert format_timestamp(1_700_000_000.1234) == "1700000000.123"
