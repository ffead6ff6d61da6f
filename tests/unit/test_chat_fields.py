"""The Chat Completions request surface as ``parse_chat_request`` judges it (no server): each field
refused by name when malformed or when the model does not support it, content parts outside the
contract, malformed input a 400 never a 500, and what is accepted passed on as sent.

These were end-to-end tests (test_chat_api.py, test_chat_surface.py, test_malformed_input.py);
one representative of each behaviour still goes through the running server there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.chat_params import supported_fields
from shared.chat_request import ChatRequest, parse_chat_request
from shared.errors import ApiError, ErrorCode
from shared.local_model import register_local_models
from shared.settings import Settings
from tests.support.api import DEFAULT_MODEL, PIXEL, messages

UNPRICED_MODEL = "openai/not-in-cost-map"  # tests/conftest.py's: no vision known for it
# The session chat server's models and defaults (tests/conftest.py's base_env).
SETTINGS = Settings.from_env({"CHAT_MODELS": f"{DEFAULT_MODEL},local/demo,{UNPRICED_MODEL}"})


@pytest.fixture(scope="module", autouse=True)
def _local_model_registered() -> None:
    """As an instance does at cold start, so what local/demo supports is the local provider's (the
    answers are cached per process: forget any given before)."""
    register_local_models(("local/demo",), 0.0)
    supported_fields.cache_clear()


def parse(body: object) -> ChatRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_chat_request(raw, SETTINGS)


def refused(body: object) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse(body)
    return raised.value


def assert_refused(error: ApiError, field: str) -> str:
    """A 400 whose ``param`` and message name ``field``; returns the message."""
    assert error.status == 400, error.message
    assert error.param == field or (error.param or "").startswith(f"{field}["), error.to_dict()
    assert field in error.message
    return error.message


# --- bad input: the documented 4xx, never a 500 (was test_chat_api.py) ----------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        ({"messages": []}, 400, "invalid_request"),
        ({"messages": "hi"}, 400, "invalid_request"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_request"),
        ({"messages": [{"role": "user", "content": 5}]}, 400, "invalid_request"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "invalid_request"),
        ({"messages": messages(), "temperature": "hot"}, 400, "invalid_request"),
        ({"messages": messages(), "temperature": 9}, 400, "invalid_request"),
        ({"messages": messages(), "max_tokens": 0}, 400, "invalid_request"),
        ({"messages": messages(), "stream": "yes"}, 400, "invalid_request"),
        ({"messages": messages(), "stop": [1]}, 400, "invalid_request"),
        ({"messages": messages(), "model": "gpt-9-secret"}, 404, "model_not_found"),
        ({"messages": messages(), "model": 7}, 400, "invalid_request"),
    ],
)
def test_bad_bodies_get_documented_4xx(body: object, status: int, code: str) -> None:
    error = refused(body)
    assert (error.status, error.code.code) == (status, code)
    assert set(error.to_dict()["error"]) == {"message", "type", "code", "param"}


def test_text_content_parts_are_accepted() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a b"}]},
    ]
    assert parse({"messages": messages}).messages == messages


def test_too_many_messages_is_400() -> None:
    error = refused({"messages": messages() * 201})
    assert (error.status, error.code) == (400, ErrorCode.INVALID_REQUEST)


# --- malformed input that used to be a 500 or a 502 (was test_malformed_input.py) -----------

HUGE_INTEGER = "9" * 5000  # past Python's 4,300-digit limit for int(str)
MALFORMED = {
    "5000_digit_integer": b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": '
    + HUGE_INTEGER.encode()
    + b"}",
    "tool_calls_of_a_number": b'{"messages": [{"role": "assistant", "tool_calls": [1]}, {"role": "user", "content": "hi"}]}',
    "tool_call_function_a_number": (
        b'{"messages": [{"role": "assistant", "tool_calls": [{"function": 5}]}, {"role": "user", "content": "hi"}]}'
    ),
    "lone_surrogate": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    "lone_surrogate_in_stream": b'{"stream": true, "messages": [{"role": "user", "content": "a\\udfffb"}]}',
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_is_400_never_500_or_502(case: str) -> None:
    error = refused(MALFORMED[case])
    assert error.status == 400, error.message
    assert error.code.error_type == "invalid_request_error" and error.message


def test_a_surrogate_pair_is_valid_unicode() -> None:
    request = parse(b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}')
    assert request.messages[0]["content"] == "\N{GRINNING FACE}"


# --- passed on as sent, or not at all (was test_chat_surface.py) ------------------------------


def test_store_false_is_accepted_and_not_forwarded() -> None:
    assert "store" not in parse({"messages": messages(), "store": False}).params


def test_max_tokens_is_passed_under_the_name_it_was_sent_with() -> None:
    params = parse({"messages": messages(), "max_tokens": 7}).params
    assert params["max_tokens"] == 7 and "max_completion_tokens" not in params


# --- refused by name (was test_chat_surface.py) ------------------------------------------------


def test_unknown_field_gets_openais_own_answer() -> None:
    message = assert_refused(refused({"messages": messages(), "frobnicate": 1}), "frobnicate")
    assert message == "Unrecognized request argument supplied: frobnicate"


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (DEFAULT_MODEL, "reasoning_effort", "low"),  # gpt-4o-mini is no reasoning model
        ("local/demo", "metadata", {"a": "b"}),
        ("local/demo", "logprobs", True),
    ],
)
def test_field_the_model_does_not_support_is_refused_by_name(model: str, field: str, value: Any) -> None:
    message = assert_refused(refused({"model": model, "messages": messages(), field: value}), field)
    assert "does not support" in message and model in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("store", True),
        ("functions", [{"name": "f"}]),
        ("tools", {"type": "function"}),
        ("tools", [{"type": "function", "function": {"name": "bad name!"}}]),
        ("tool_choice", "sometimes"),
        ("parallel_tool_calls", "no"),
        ("response_format", {"type": "xml"}),
        ("response_format", {"type": "json_schema", "json_schema": {"schema": {}}}),
        ("n", 0),
        ("n", 1.5),
        ("seed", "7"),
        ("presence_penalty", 3),
        ("frequency_penalty", "low"),
        ("logprobs", 1),
        ("top_logprobs", 2),  # without logprobs
        ("logit_bias", {"abc": 1}),
        ("logit_bias", {"50256": 500}),
        ("max_completion_tokens", 0),
        ("modalities", ["smell"]),
        ("prediction", {"type": "content"}),
        ("service_tier", "gold"),
        ("metadata", {"k": 5}),
        ("user", 12),
    ],
)
def test_malformed_field_is_a_400_naming_it(field: str, value: Any) -> None:
    assert_refused(refused({"messages": messages(), field: value}), field)


@pytest.mark.parametrize(
    ("part", "model"),
    [
        ({"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}, DEFAULT_MODEL),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, DEFAULT_MODEL),
        ({"type": "image_url", "image_url": {"url": PIXEL, "detail": "ultra"}}, DEFAULT_MODEL),
        ({"type": "image_url", "image_url": {"url": PIXEL}}, UNPRICED_MODEL),  # no vision known
        ({"type": "file", "file": {"file_id": "file-abc"}}, DEFAULT_MODEL),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, DEFAULT_MODEL),
        ({"type": "video", "video": {}}, DEFAULT_MODEL),
    ],
)
def test_content_parts_outside_the_contract_are_refused(part: dict[str, Any], model: str) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]
    error = refused({"model": model, "messages": messages})
    assert error.status == 400, error.message
    assert error.param == "messages[0].content"
