"""The whole Chat Completions request surface, through the running function: every field reaches
the provider as sent (the stand-in records it) or is refused by name; tools, structured output,
n, logprobs and images come back intact, with the official ``openai`` client."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import openai
import pytest

from standins.openai_llm import FakeOpenAI
from tests.conftest import DEFAULT_MODEL, User
from tests.support.api import PIXEL, chat

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def sent_with(fake_llm: FakeOpenAI, marker: str) -> dict[str, Any]:
    """The body the provider received for the request whose prompt holds ``marker``."""
    matching = [r for r in fake_llm.requests if marker in json.dumps(r.get("messages"))]
    assert len(matching) == 1, f"{len(matching)} provider requests carry {marker}"
    return matching[0]


def marked(text: str = "") -> tuple[str, list[dict[str, Any]]]:
    marker = f"m{uuid.uuid4().hex[:10]}"
    return marker, [{"role": "user", "content": f"{marker} {text}"}]


def assert_refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field or error["param"].startswith(f"{field}["), error
    assert field in error["message"]
    return str(error["message"])


# --- every field reaches the provider as sent -------------------------------------------------

PASSED_AS_SENT: dict[str, Any] = {
    "tools": [WEATHER],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}},
    "n": 2,
    "seed": 42,
    "stop": ["\n\n", "END"],
    "temperature": 0.3,
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"50256": -100},
    "max_completion_tokens": 50,
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "a predicted answer"},
    "service_tier": "auto",
    "metadata": {"feature": "surface-test"},
}


def test_every_supported_field_reaches_the_provider_as_sent(chat_server, fake_llm: FakeOpenAI, user: User) -> None:
    marker, messages = marked()
    response = chat(chat_server, user, {"model": DEFAULT_MODEL, "messages": messages, **PASSED_AS_SENT})
    assert response.status_code == 200, response.text
    sent = sent_with(fake_llm, marker)
    for field, value in PASSED_AS_SENT.items():
        assert sent.get(field) == value, field
    assert "store" not in sent and "user" not in sent


def test_user_is_forwarded_as_the_uid_hash_never_as_sent(chat_server, fake_llm: FakeOpenAI, new_user) -> None:
    alice, bob = new_user(), new_user()
    seen = []
    for caller in (alice, alice, bob):
        marker, messages = marked()
        assert chat(chat_server, caller, {"messages": messages, "user": "someone-else"}).status_code == 200
        seen.append(sent_with(fake_llm, marker)["user"])
    assert seen[0] == seen[1] != seen[2]
    assert all(value.startswith("uid-") and alice.uid not in value and "someone-else" not in value for value in seen)


# --- refused by name ---------------------------------------------------------------------------


def test_unknown_field_gets_openais_own_answer(chat_server, fake_llm: FakeOpenAI, user: User) -> None:
    marker, messages = marked()
    message = assert_refused(chat(chat_server, user, {"messages": messages, "frobnicate": 1}), "frobnicate")
    assert message == "Unrecognized request argument supplied: frobnicate"
    assert not [r for r in fake_llm.requests if marker in json.dumps(r)]


# One case through the server; the others: tests/unit/test_chat_fields.py.
@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (DEFAULT_MODEL, "reasoning_effort", "low"),  # gpt-4o-mini is no reasoning model
    ],
)
def test_field_the_model_does_not_support_is_refused_by_name(
    chat_server, user: User, model: str, field: str, value: Any
) -> None:
    _, messages = marked()
    message = assert_refused(chat(chat_server, user, {"model": model, "messages": messages, field: value}), field)
    assert "does not support" in message and model in message


# One case through the server; the others: tests/unit/test_chat_fields.py.
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", {"type": "function"}),
    ],
)
def test_malformed_field_is_a_400_naming_it(chat_server, user: User, field: str, value: Any) -> None:
    _, messages = marked()
    assert_refused(chat(chat_server, user, {"messages": messages, field: value}), field)


# One case through the server; the others: tests/unit/test_chat_fields.py.
@pytest.mark.parametrize(
    ("part", "model"),
    [
        ({"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}, DEFAULT_MODEL),
    ],
)
def test_content_parts_outside_the_contract_are_refused(chat_server, user: User, part: dict, model: str) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]
    response = chat(chat_server, user, {"model": model, "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].content"


def test_image_parts_reach_a_vision_model(chat_server, fake_llm: FakeOpenAI, user: User) -> None:
    marker, _ = marked()
    parts = [
        {"type": "text", "text": marker},
        {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    response = chat(chat_server, user, {"messages": [{"role": "user", "content": parts}]})
    assert response.status_code == 200, response.text
    received = sent_with(fake_llm, marker)["messages"][0]["content"]
    assert [p["image_url"]["url"] for p in received[1:]] == [PIXEL, "https://example.com/cat.png"]
    assert received[1]["image_url"]["detail"] == "low"


def test_a_data_uri_counts_against_the_body_limit(chat_server, user: User) -> None:
    big = "data:image/png;base64," + "A" * (300 * 1024)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": big}}]}]
    response = chat(chat_server, user, {"messages": messages})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


# --- responses: tool calls, n, logprobs, cost, request id ------------------------------------


def test_json_answer_carries_cost_and_the_request_id(chat_server, user: User) -> None:
    response = chat(chat_server, user, {"messages": marked()[1]})
    body = response.json()
    assert response.headers["x-request-id"] == body["id"]
    assert body["usage"]["cost"] > 0


def test_openai_client_gets_tool_calls_as_json(chat_server, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"] == completion.id
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "example", "days": 1}


def test_openai_client_streams_tool_call_fragments(chat_server, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "#tool please"}],
        tools=[WEATHER],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_0_get_weather" and deltas[0].function.name == "get_weather"
    assert len(deltas) > 2, "arguments arrive in fragments"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "example", "days": 1}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["cost"] > 0


def test_openai_client_structured_output_with_json_schema(chat_server, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    completion = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )
    import jsonschema

    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), PERSON_SCHEMA)


def test_openai_client_gets_n_choices_json_and_streamed(chat_server, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    completion = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "#words:3"}], n=2, logprobs=True, top_logprobs=1
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content == "word0 word1 word2" for c in completion.choices)
    assert completion.choices[1].logprobs is not None and completion.choices[1].logprobs.content[0].token == "word0"
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "#words:3"}], n=2, stream=True
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finished = set()
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert texts == {0: "word0 word1 word2", 1: "word0 word1 word2"}
    assert finished == {0, 1}


def test_openai_client_sends_an_image_part(chat_server, fake_llm: FakeOpenAI, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    marker = f"img{uuid.uuid4().hex[:8]}"
    completion = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"{marker} what is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL, "detail": "high"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    assert sent_with(fake_llm, marker)["messages"][0]["content"][1]["image_url"]["url"] == PIXEL


def test_a_tool_result_round_trip_is_accepted(chat_server, fake_llm: FakeOpenAI, user: User) -> None:
    marker, messages = marked("weather?")
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert chat(chat_server, user, {"messages": messages, "tools": [WEATHER]}).status_code == 200
    assert sent_with(fake_llm, marker)["messages"][1]["tool_calls"][0]["id"] == "call_1"


# --- the local model speaks the protocol too ---------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_local_model_answers_json_schema_with_a_valid_object(chat_server, user: User, stream: bool) -> None:
    import jsonschema

    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}
    messages: Any = [{"role": "user", "content": "Ada"}]
    if stream:
        chunks = client.chat.completions.create(
            model="local/demo", messages=messages, response_format=response_format, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(
            model="local/demo", messages=messages, response_format=response_format
        )
        text = completion.choices[0].message.content or ""
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)
    json_object = client.chat.completions.create(
        model="local/demo", messages=messages, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(json_object.choices[0].message.content or ""), dict)
