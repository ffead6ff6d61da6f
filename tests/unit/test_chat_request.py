"""The chat request body: what is accepted, and the 4xx that names what is not (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.chat_request import parse_chat_request
from shared.errors import ApiError, ErrorCode
from shared.settings import Settings

SETTINGS = Settings.from_env({"CHAT_MODELS": "openai/gpt-4o-mini,local/demo", "CHAT_MAX_TOKENS": "100"})
HELLO = [{"role": "user", "content": "hello"}]


def parse(**body: Any) -> Any:
    return parse_chat_request(json.dumps({"messages": HELLO, **body}).encode(), SETTINGS)


def refusal(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse_chat_request(raw, SETTINGS)
    return raised.value


def test_a_minimal_request_gets_the_default_model_and_the_token_cap() -> None:
    request = parse()
    assert request.model == "openai/gpt-4o-mini"
    assert request.messages == HELLO
    assert not request.stream and not request.include_usage
    assert request.params == {"max_tokens": 100}


def test_max_tokens_is_capped_by_the_setting() -> None:
    assert parse(max_tokens=500).params["max_tokens"] == 100
    assert parse(max_completion_tokens=20).max_tokens == 20


def test_both_limits_at_once_are_refused_by_name() -> None:
    # LiteLLM sends the provider the last one it reads: a reservation of max_tokens: 1 once
    # let max_completion_tokens: 4096 through to OpenAI's reasoning models, Anthropic and Gemini.
    with pytest.raises(ApiError, match="not both") as raised:
        parse(max_tokens=1, max_completion_tokens=4096)
    assert raised.value.param == "max_completion_tokens" and raised.value.code is ErrorCode.INVALID_REQUEST


def test_sampling_parameters_and_stop_are_passed_on() -> None:
    request = parse(temperature=0.5, top_p=1, stop="END", stream=True, stream_options={"include_usage": True})
    assert request.params == {"temperature": 0.5, "top_p": 1, "max_tokens": 100, "stop": ["END"]}
    assert request.stream and request.include_usage


def test_message_keys_are_kept_and_an_unknown_one_is_refused_by_name() -> None:
    request = parse(messages=[{"role": "user", "content": "hi", "name": "ann"}])
    assert request.messages == [{"role": "user", "content": "hi", "name": "ann"}]
    with pytest.raises(ApiError) as raised:
        parse(messages=[{"role": "user", "content": "hi", "extra": 1}])
    assert raised.value.param == "messages[0].extra"


def test_text_parts_are_accepted_as_content() -> None:
    assert parse(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]).messages[0]["content"]


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", ErrorCode.INVALID_JSON, None),
        (b"\xff\xfe", ErrorCode.INVALID_JSON, None),
        (b"[]", ErrorCode.INVALID_REQUEST, None),
        (b'{"messages": []}', ErrorCode.INVALID_REQUEST, "messages"),
        (b'{"messages": "hi"}', ErrorCode.INVALID_REQUEST, "messages"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', ErrorCode.INVALID_REQUEST, "messages[0].role"),
        (b'{"messages": [{"role": "user"}]}', ErrorCode.INVALID_REQUEST, "messages[0].content"),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "image"}]}]}',
            ErrorCode.INVALID_REQUEST,
            "messages[0].content",
        ),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', ErrorCode.INVALID_REQUEST, "messages[0].tool_call_id"),
        (b'{"messages": [{"role": "user", "content": "x", "name": 5}]}', ErrorCode.INVALID_REQUEST, "messages[0].name"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-5"}', ErrorCode.MODEL_NOT_FOUND, "model"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": ""}', ErrorCode.INVALID_REQUEST, "model"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": 3}',
            ErrorCode.INVALID_REQUEST,
            "temperature",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": true}',
            ErrorCode.INVALID_REQUEST,
            "temperature",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', ErrorCode.INVALID_REQUEST, "max_tokens"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}',
            ErrorCode.INVALID_REQUEST,
            "max_tokens",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', ErrorCode.INVALID_REQUEST, "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', ErrorCode.INVALID_REQUEST, "stream"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": 1}}',
            ErrorCode.INVALID_REQUEST,
            "stream_options",
        ),
    ],
)
def test_a_malformed_body_is_a_4xx_naming_the_field(raw: bytes, code: ErrorCode, param: str | None) -> None:
    error = refusal(raw)
    assert error.code is code
    assert error.param == param
    assert 400 <= code.status < 500


def test_more_messages_than_the_limit_are_refused_with_the_limit_named() -> None:
    settings = Settings.from_env({"CHAT_MAX_MESSAGES": "2"})
    with pytest.raises(ApiError, match="at most 2") as raised:
        parse_chat_request(json.dumps({"messages": HELLO * 3}).encode(), settings)
    assert raised.value.param == "messages"


@pytest.mark.parametrize(
    ("field", "param"),
    [("tools", "tools[0]"), ("response_format", "response_format")],
)
def test_json_nested_past_the_depth_bound_is_a_400_naming_the_field(field: str, param: str) -> None:
    # Seen: ~1,000 levels inside tools or response_format was a 502 (a RecursionError in LiteLLM).
    deep = '{"type": "object", "properties": {"x": ' * 450 + "{}" + "}}" * 450  # 900 levels
    tool = '[{"type": "function", "function": {"name": "f", "parameters": ' + deep + "}}]"
    schema = '{"type": "json_schema", "json_schema": {"name": "s", "schema": ' + deep + "}}"
    value = tool if field == "tools" else schema
    raw = '{"messages": [{"role": "user", "content": "hi"}], "' + field + '": ' + value + "}"
    error = refusal(raw.encode())
    assert "nested more than" in error.message
    assert error.param == param and error.code is ErrorCode.INVALID_REQUEST


def test_a_schema_nested_within_the_bound_is_accepted() -> None:
    deep: dict[str, object] = {"type": "string"}
    for _ in range(20):
        deep = {"type": "object", "properties": {"x": deep}}
    parse(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": deep}})
