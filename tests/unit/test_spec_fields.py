"""The request fields of openai-openapi 2.3.0: each documented one is passed on or refused by name
as not supported by the model or this gateway, never "unrecognized" (no servers)."""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import pytest

from shared.chat_request import ChatRequest, parse_chat_request
from shared.errors import ApiError
from shared.settings import Settings

SETTINGS = Settings.from_env({"CHAT_MODELS": "openai/gpt-4o-mini,openai/gpt-5,local/demo"})
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def parse(**body: Any) -> ChatRequest:
    return parse_chat_request(json.dumps({"messages": [{"role": "user", "content": "hi"}], **body}).encode(), SETTINGS)


def refusal(**body: Any) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse(**body)
    assert raised.value.status == 400
    return raised.value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt_cache_key", "k"),
        ("prompt_cache_retention", "24h"),
        ("service_tier", "fast"),
        ("safety_identifier", "s"),
    ],
)
def test_documented_fields_pass_on_to_a_model_that_takes_them(field: str, value: Any) -> None:
    request = parse(model="openai/gpt-4o-mini", **{field: value})
    assert request.params.get(field) == value or field in request.end_user


def test_spec_enum_values_pass_to_a_model_that_takes_the_field() -> None:
    assert parse(model="openai/gpt-5", reasoning_effort="max", verbosity="low").params["reasoning_effort"] == "max"


@pytest.mark.parametrize("field", ["moderation", "verbosity", "prompt_cache_key", "prompt_cache_options"])
def test_a_documented_null_is_an_absent_field(field: str) -> None:
    assert field not in parse(**{field: None}).params


@pytest.mark.parametrize(
    ("field", "value"), [("moderation", {"model": "omni-moderation-latest"}), ("prompt_cache_options", {"ttl": "30m"})]
)
def test_a_documented_field_no_provider_gets_is_refused_as_not_supported_by_this_gateway(
    field: str, value: Any
) -> None:
    error = refusal(**{field: value})
    assert error.param == field and "not supported by this gateway" in error.message


@pytest.mark.parametrize(
    ("model", "field", "value"), [("openai/gpt-4o-mini", "verbosity", "low"), ("local/demo", "prompt_cache_key", "k")]
)
def test_a_documented_field_the_model_does_not_take_names_the_model(model: str, field: str, value: Any) -> None:
    error = refusal(model=model, **{field: value})
    assert error.message == f"The model '{model}' does not support '{field}'." and error.param == field


def test_safety_identifier_never_travels_as_sent() -> None:
    request = parse(safety_identifier="someone", user="else")
    assert request.end_user == ("user", "safety_identifier")
    assert "safety_identifier" not in request.params and "user" not in request.params


@pytest.mark.parametrize(
    ("field", "value"), [("safety_identifier", "x" * 65), ("verbosity", "loud"), ("prompt_cache_retention", "1h")]
)
def test_documented_fields_are_checked_by_the_spec_s_rules(field: str, value: Any) -> None:
    assert refusal(model="openai/gpt-5", **{field: value}).param == field


def test_a_tool_choice_naming_a_function_not_in_tools_is_refused() -> None:
    error = refusal(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert error.param == "tool_choice" and "get_time" in error.message
    error = refusal(tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert error.param == "tool_choice"


def test_a_tool_choice_naming_an_offered_function_passes() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    assert parse(tools=[WEATHER], tool_choice=choice).params["tool_choice"] == choice
