"""The Responses API's translation to and from Chat Completions (no servers)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import pytest

from shared.errors import ApiError
from shared.responses_api import ResponsesRequest, parse_responses_body, response_body, response_events
from shared.settings import Settings
from tests.support.openai_spec import stream_event_violations, violations

SETTINGS = Settings.from_env(
    {"CHAT_MODELS": "openai/gpt-4o-mini,local/demo,mini=openai/gpt-4o-mini", "CHAT_MAX_TOKENS": "100"}
)
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def parse(**body: Any) -> ResponsesRequest:
    return parse_responses_body({"input": "hi", **body}, SETTINGS)


def refusal(**body: Any) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse(**body)
    assert raised.value.status == 400
    return raised.value


def test_a_conversation_of_items_becomes_chat_messages() -> None:
    request = parse(
        instructions="Be brief.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}", "id": "fc_1"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rainy"}]},
        ],
        tools=[WEATHER],
    )
    roles = [m["role"] for m in request.chat.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in request.chat.messages[2]["tool_calls"]] == ["c1", "c2"]  # parallel calls: one message
    assert request.chat.messages[4]["content"] == "rainy"
    assert request.chat.params["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]


def test_fields_are_translated_to_their_chat_names() -> None:
    request = parse(
        model="mini",
        max_output_tokens=500,
        text={"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}, "strict": True}},
        tool_choice={"type": "function", "name": "get_weather"},
        tools=[WEATHER],
    )
    assert request.chat.model == "openai/gpt-4o-mini"  # a public id, billed as its LiteLLM model
    assert request.chat.params["max_completion_tokens"] == 100  # capped by CHAT_MAX_TOKENS
    assert request.chat.params["response_format"]["json_schema"] == {
        "name": "p",
        "schema": {"type": "object"},
        "strict": True,
    }
    assert request.chat.params["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_a_stream_always_asks_for_the_usage_chunk() -> None:
    assert parse(stream=True).chat.include_usage


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("previous_response_id", "resp_1"),
        ("conversation", "conv_1"),
        ("store", True),
        ("background", True),
        ("prompt", {"id": "pmpt_1"}),
        ("include", ["file_search_call.results"]),
        ("max_tool_calls", 3),
        ("truncation", "auto"),
        ("top_logprobs", 2),
    ],
)
def test_what_needs_server_state_is_refused_by_name(field: str, value: Any) -> None:
    assert refusal(**{field: value}).param == field


@pytest.mark.parametrize(
    ("field", "value"), [("store", False), ("background", False), ("truncation", "disabled"), ("include", [])]
)
def test_the_no_op_values_of_refused_fields_pass(field: str, value: Any) -> None:
    assert parse(**{field: value}).chat.messages


def test_built_in_tools_and_stored_items_are_refused_by_name() -> None:
    assert refusal(tools=[{"type": "web_search"}]).param == "tools[0]"
    assert refusal(input=[{"type": "item_reference", "id": "msg_1"}]).param == "input[0]"
    assert (
        refusal(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]).param
        == "input[0].content"
    )
    assert refusal(reasoning={"effort": "low", "summary": "auto"}).param == "reasoning.summary"


def test_unknown_fields_get_openais_words() -> None:
    error = refusal(frobnicate=1)
    assert error.message == "Unrecognized request argument supplied: frobnicate"


def test_chat_errors_name_the_responses_field() -> None:
    assert refusal(max_output_tokens=0).param == "max_output_tokens"
    error = refusal(model="local/demo", reasoning={"effort": "low"})
    assert error.param == "reasoning.effort" and "reasoning.effort" in error.message


COMPLETION = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "local/demo",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "refusal": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "cost": 1e-6},
}


def test_a_completion_becomes_a_response_object_in_the_spec_s_shape() -> None:
    body = response_body(COMPLETION, parse(tools=[WEATHER]))
    assert [item["type"] for item in body["output"]] == ["message", "function_call"]
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["cost"] == 1e-6
    assert body["id"] == "chatcmpl-abc" and body["status"] == "completed"
    assert violations("Response", body) == []


def test_a_length_finish_is_an_incomplete_response() -> None:
    completion = json.loads(json.dumps(COMPLETION))
    completion["choices"][0]["finish_reason"] = "length"
    body = response_body(completion, parse())
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


def chat_lines(*chunks: dict[str, Any], last: str = "data: [DONE]\n\n") -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield last


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "local/demo",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def events_of(lines: Iterator[str]) -> list[dict[str, Any]]:
    out = []
    for text in response_events(lines, "chatcmpl-abc", parse(stream=True)):
        name, data = text.split("\n")[:2]
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        out.append(event)
    return out


def test_chunks_become_the_named_events_in_order() -> None:
    usage = {**chunk({}), "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    events = events_of(
        chat_lines(
            chunk({"role": "assistant", "content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({"tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, "tool_calls"),
            usage,
        )
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello" and final["output"][1]["arguments"] == "{}"
    assert final["usage"]["output_tokens"] == 2
    assert [p for e in events for p in stream_event_violations(e)] == []


def test_an_error_line_ends_the_events_with_error_and_failed() -> None:
    error = {
        "error": {"message": "The model call failed.", "type": "api_error", "code": "upstream_error", "param": None}
    }
    events = events_of(chat_lines(chunk({"content": "Hi"}), last=f"data: {json.dumps(error)}\n\n"))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert [p for e in events for p in stream_event_violations(e)] == []


def test_closing_the_events_closes_the_chat_stream() -> None:
    closed: list[bool] = []

    def lines() -> Iterator[str]:
        try:
            yield f"data: {json.dumps(chunk({'content': 'Hi'}))}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            closed.append(True)  # where the chat stream bills what it sent

    events = response_events(lines(), "chatcmpl-abc", parse(stream=True))
    next(events), next(events), next(events)
    events.close()
    assert closed == [True]
