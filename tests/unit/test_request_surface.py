"""The request surface as parsed, and what its estimate counts (pure functions, no servers)."""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import pytest

from shared.chat_request import ChatRequest, parse_chat_request
from shared.errors import ApiError
from shared.pricing.estimate import IMAGE_TOKENS, estimate
from shared.settings import Settings

SETTINGS = Settings.from_env({"CHAT_MODELS": "openai/gpt-4o-mini,local/demo", "CHAT_MAX_TOKENS": "100"})
TEXT = [{"role": "user", "content": "describe this picture"}]


def parse(**body: Any) -> ChatRequest:
    return parse_chat_request(json.dumps({"messages": TEXT, **body}).encode(), SETTINGS)


def big_tool(words: int) -> dict[str, Any]:
    description = " ".join(f"w{i}" for i in range(words))
    return {"type": "function", "function": {"name": "lookup", "description": description, "parameters": {}}}


def worst_case_tokens(request: ChatRequest) -> tuple[int, int]:
    tokens = estimate(request)
    return tokens.prompt_tokens, tokens.completion_tokens


def test_a_5000_token_tool_schema_is_in_the_reserved_prompt() -> None:
    plain, _ = worst_case_tokens(parse())
    with_tool, _ = worst_case_tokens(parse(tools=[big_tool(2500)]))
    assert with_tool - plain >= 5000


def test_an_image_reserves_more_than_the_same_text_alone() -> None:
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe this picture"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]
    text_only, _ = worst_case_tokens(parse())
    with_image, _ = worst_case_tokens(parse(messages=image))
    assert with_image >= text_only + IMAGE_TOKENS["openai"]["auto"]


def test_the_response_format_schema_is_in_the_reserved_prompt() -> None:
    schema = {"type": "object", "properties": {f"field{i}": {"type": "string"} for i in range(200)}}
    plain, _ = worst_case_tokens(parse())
    structured, _ = worst_case_tokens(
        parse(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    )
    assert structured - plain > 600


def test_n_multiplies_the_completion_part() -> None:
    assert worst_case_tokens(parse(n=3, max_tokens=40))[1] == 120
    assert worst_case_tokens(parse(n=3))[1] == 300  # CHAT_MAX_TOKENS per choice


def test_integral_numbers_count_as_integers_as_json_schema_says() -> None:
    request = parse(n=2.0, max_tokens=40.0, seed=7.0, model="openai/gpt-4o-mini")
    assert (request.params["n"], request.params["max_tokens"], request.params["seed"]) == (2, 40, 7)
    assert all(type(request.params[key]) is int for key in ("n", "max_tokens", "seed"))
    with pytest.raises(ApiError, match="n must be an integer"):
        parse(n=1.5)


def test_limits_keep_the_name_they_were_sent_with_and_are_capped() -> None:
    assert parse(max_completion_tokens=500).params["max_completion_tokens"] == 100
    assert "max_tokens" not in parse(max_completion_tokens=5).params
    assert parse().params["max_tokens"] == 100


def test_user_and_metadata_never_travel_as_sent() -> None:
    request = parse(user="someone", metadata={"k": "v"})
    assert "user" not in request.params and request.end_user
    assert request.params["extra_body"] == {"metadata": {"k": "v"}}


@pytest.mark.parametrize("field", ["frobnicate", "messages_extra"])
def test_unknown_fields_get_openais_words(field: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse(**{field: 1})
    assert raised.value.message == f"Unrecognized request argument supplied: {field}"
    assert raised.value.param == field


def test_an_unknown_message_key_is_named() -> None:
    with pytest.raises(ApiError) as raised:
        parse(messages=[{"role": "user", "content": "x", "colour": "red"}])
    assert raised.value.param == "messages[0].colour"
