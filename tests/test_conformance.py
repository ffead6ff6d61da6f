"""The wire as OpenAI publishes it: every answer validated against OpenAI's own schemas.

A matrix of valid requests (tools auto/required/named/none, parallel calls, ``n``, structured
outputs, logprobs, limits, sampling, a tool round trip, documented pass-through fields) goes to the
provider stand-in's model and to ``local/demo``, as JSON and streamed with and without the usage
chunk; every JSON body, stream chunk and error is validated against openai/openai-openapi 2.3.0
(``tests/support/openai_spec.py``). The extra ``usage.cost`` is allowed: the spec allows extra fields.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from standins.lago import FakeLago
from standins.openai_llm import FakeOpenAI
from standins.processes import FunctionServer
from tests.conftest import DEFAULT_MODEL, User
from tests.support.api import CHAT, ask
from tests.support.openai_spec import stream_event_violations, violations

LOCAL = "local/demo"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
}
PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}
TOOL_ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris? Use get_weather."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


def _tool_prompt(model: str) -> str:
    # Each model's own trigger for an unforced tool call: the stand-in's #tool, the local model's tool name.
    return "Weather in Paris? #tool" if model == DEFAULT_MODEL else "Weather in Paris? get_weather"


def matrix(model: str) -> dict[str, dict[str, Any]]:
    """Valid requests to ``model``, by name (only what the model takes)."""
    cases: dict[str, dict[str, Any]] = {
        "plain": ask("Hello there", model=model),
        "system and developer": {
            "model": model,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            ],
        },
        "tools auto, called": ask(_tool_prompt(model), model=model, tools=[WEATHER, TIME], tool_choice="auto"),
        "tools auto, not called": ask("Hello", model=model, tools=[WEATHER]),
        "tools required": ask("Weather?", model=model, tools=[WEATHER, TIME], tool_choice="required"),
        "tools named": ask(
            "Time?",
            model=model,
            tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        ),
        "tools none": ask("Weather?", model=model, tools=[WEATHER], tool_choice="none"),
        "parallel tool calls off": ask(
            "Weather?", model=model, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False
        ),
        "parallel tool calls on": ask(
            "Weather?", model=model, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True
        ),
        "tool result round trip": {"model": model, "messages": TOOL_ROUND_TRIP, "tools": [WEATHER]},
        "n=3": ask("Hello", model=model, n=3),
        "n=2 with a tool": ask("Weather?", model=model, n=2, tools=[WEATHER], tool_choice="required"),
        "json_schema": ask("Invent a person.", model=model, response_format=PERSON),
        "json_object": ask("Reply in JSON.", model=model, response_format={"type": "json_object"}),
        "text format": ask("Hello", model=model, response_format={"type": "text"}),
        "max_tokens": ask("Hello there you", model=model, max_tokens=2),
        "max_completion_tokens": ask("Hello", model=model, max_completion_tokens=3),
        "sampling": ask("Hello", model=model, temperature=0.2, top_p=0.9, seed=7),
        "stop": ask("Hello there", model=model, stop=["there"]),
        "user": ask("Hello", model=model, user="someone"),
    }
    if model == DEFAULT_MODEL:
        cases |= {
            "logprobs": ask("Hello", model=model, logprobs=True),
            "top_logprobs": ask("Hello", model=model, logprobs=True, top_logprobs=2),
            "penalties and bias": ask(
                "Hello", model=model, presence_penalty=0.5, frequency_penalty=-0.5, logit_bias={"50256": -100}
            ),
            "metadata and store false": ask("Hello", model=model, metadata={"k": "v"}, store=False),
            "prompt cache and safety identifier": ask(
                "Hello", model=model, prompt_cache_key="k1", prompt_cache_retention="24h", safety_identifier="s1"
            ),
            "service tier fast": ask("Hello", model=model, service_tier="fast"),
            "documented nulls": ask("Hello", model=model, moderation=None, verbosity=None, prompt_cache_key=None),
            "a long answer": ask("#words:40", model=model),
        }
    return cases


def validate_json(response: httpx.Response) -> list[str]:
    schema = "CreateChatCompletionResponse" if response.status_code == 200 else "ErrorResponse"
    return violations(schema, response.json())


def stream_events(server: FunctionServer, user: User, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", server.url + CHAT, json=body, headers=user.headers) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        done = False
        for event in source.iter_sse():
            assert not done, "nothing may follow data: [DONE]"
            if event.data == "[DONE]":
                done = True
                continue
            yield json.loads(event.data)


def validate_stream(server: FunctionServer, user: User, body: dict[str, Any]) -> tuple[int, list[str]]:
    found: list[str] = []
    count = 0
    for data in stream_events(server, user, body):
        count += 1
        schema = "ErrorResponse" if "error" in data else "CreateChatCompletionStreamResponse"
        found += violations(schema, data)
    return count, found


@pytest.mark.parametrize("model", [DEFAULT_MODEL, LOCAL])
def test_every_json_completion_validates_against_openais_spec(
    chat_server: FunctionServer, user: User, model: str
) -> None:
    found: dict[str, list[str]] = {}
    for name, body in matrix(model).items():
        response = httpx.post(chat_server.url + CHAT, json=body, headers=user.headers, timeout=30)
        assert response.status_code == 200, (name, response.text)
        if problems := validate_json(response):
            found[name] = problems
    assert not found, json.dumps(found, indent=1)


@pytest.mark.parametrize("include_usage", [True, False], ids=["with usage", "without usage"])
@pytest.mark.parametrize("model", [DEFAULT_MODEL, LOCAL])
def test_every_stream_chunk_validates_against_openais_spec(
    chat_server: FunctionServer, user: User, model: str, include_usage: bool
) -> None:
    found: dict[str, list[str]] = {}
    chunks = 0
    for name, body in matrix(model).items():
        body = {**body, "stream": True, "stream_options": {"include_usage": include_usage}}
        count, problems = validate_stream(chat_server, user, body)
        chunks += count
        if problems:
            found[name] = problems
    assert not found, json.dumps(found, indent=1)
    assert chunks > 3 * len(matrix(model))


def test_every_error_validates_against_openais_spec(chat_server: FunctionServer, user: User) -> None:
    url = chat_server.url + CHAT
    answers = {
        "unknown field": httpx.post(url, json=ask(frobnicate=1), headers=user.headers),
        "unknown model": httpx.post(url, json=ask(model="openai/nope"), headers=user.headers),
        "unoffered tool_choice": httpx.post(
            url,
            json=ask(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
            headers=user.headers,
        ),
        "field the model does not take": httpx.post(url, json=ask(model=LOCAL, logprobs=True), headers=user.headers),
        "gateway refuses": httpx.post(
            url, json=ask(moderation={"model": "omni-moderation-latest"}), headers=user.headers
        ),
        "no token": httpx.post(url, json=ask()),
        "not JSON": httpx.post(url, content=b"{", headers=user.headers),
        "wrong method": httpx.get(url, headers=user.headers),
        "unknown path": httpx.post(chat_server.url + "/v1/completions", json=ask(), headers=user.headers),
        "provider error": httpx.post(url, json=ask("#status:503"), headers=user.headers),
    }
    found = {name: violations("ErrorResponse", r.json()) for name, r in answers.items()}
    assert all(r.status_code >= 400 for r in answers.values())
    assert not any(found.values()), found


def test_the_models_list_validates_against_openais_spec(chat_server: FunctionServer, user: User) -> None:
    response = httpx.get(chat_server.url + "/v1/models", headers=user.headers)
    assert response.status_code == 200
    assert violations("ListModelsResponse", response.json()) == []


def test_a_stream_the_provider_cuts_ends_with_an_error_event_and_no_done(
    chat_server: FunctionServer, user: User
) -> None:
    """What OpenAI's clients read as a failed stream: the chunks sent so far, then one
    ``data: {"error": ...}`` event (the openai packages raise it as ``APIError``), and no
    ``data: [DONE]``, which would say the answer is whole."""
    events = list(stream_events(chat_server, user, ask("#words:10 #cut:3", stream=True)))
    assert "error" in events[-1] and all("error" not in e for e in events[:-1])
    assert [violations("CreateChatCompletionStreamResponse", e) for e in events[:-1]] == [[]] * (len(events) - 1)
    assert violations("ErrorResponse", events[-1]) == []
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    text = ""
    with pytest.raises(openai.APIError, match="provider"):
        for chunk in client.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "#words:10 #cut:3"}], stream=True
        ):
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "word0 word1 word2 "


def test_documented_fields_reach_the_provider_or_are_refused_by_name(
    chat_server: FunctionServer, fake_llm: FakeOpenAI, user: User
) -> None:
    marker = f"m{uuid.uuid4().hex[:10]}"
    body = ask(
        marker, prompt_cache_key="pk", prompt_cache_retention="24h", safety_identifier="someone", service_tier="fast"
    )
    assert httpx.post(chat_server.url + CHAT, json=body, headers=user.headers).status_code == 200
    sent = next(r for r in fake_llm.requests if marker in json.dumps(r.get("messages")))
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"], sent["service_tier"]) == ("pk", "24h", "fast")
    assert sent["safety_identifier"].startswith("uid-")  # the verified pseudonym, never the sent value
    for field, value, words in [
        ("moderation", {"model": "omni-moderation-latest"}, "not supported by this gateway"),
        ("prompt_cache_options", {"ttl": "30m"}, "not supported by this gateway"),
        ("verbosity", "low", f"The model '{DEFAULT_MODEL}' does not support 'verbosity'"),
        ("reasoning_effort", "max", f"The model '{DEFAULT_MODEL}' does not support 'reasoning_effort'"),
    ]:
        response = httpx.post(chat_server.url + CHAT, json=ask(**{field: value}), headers=user.headers)
        assert response.status_code == 400 and words in response.json()["error"]["message"], response.text
        assert response.json()["error"]["param"] == field


# --- the Responses API ---------------------------------------------------------------------------

RESPONSES = "/v1/responses"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    **{k: v for k, v in WEATHER["function"].items() if k != "name"},
}
TIME_TOOL = {"type": "function", "name": "get_time", "parameters": TIME["function"]["parameters"], "strict": False}
PERSON_FORMAT = {"type": "json_schema", "name": "person", "schema": PERSON["json_schema"]["schema"], "strict": True}


def responses_matrix(model: str) -> dict[str, dict[str, Any]]:
    """Valid Responses API requests to ``model``, by name."""
    base = {"model": model}
    cases = {
        "string input": base | {"input": "Hello there"},
        "instructions and items": base
        | {
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Answer in English."},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            ],
        },
        "tools auto, called": base | {"input": _tool_prompt(model), "tools": [WEATHER_TOOL, TIME_TOOL]},
        "tools required": base | {"input": "Weather?", "tools": [WEATHER_TOOL], "tool_choice": "required"},
        "tools named": base
        | {
            "input": "Time?",
            "tools": [WEATHER_TOOL, TIME_TOOL],
            "tool_choice": {"type": "function", "name": "get_time"},
        },
        "tools none": base | {"input": "Weather?", "tools": [WEATHER_TOOL], "tool_choice": "none"},
        "parallel tool calls off": base
        | {"input": "Weather?", "tools": [WEATHER_TOOL], "tool_choice": "required", "parallel_tool_calls": False},
        "function call output round trip": base
        | {
            "input": [
                {"role": "user", "content": "Weather in Paris? get_weather"},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
            ],
            "tools": [WEATHER_TOOL],
        },
        "json_schema": base | {"input": "Invent a person.", "text": {"format": PERSON_FORMAT}},
        "json_object": base | {"input": "Reply in JSON.", "text": {"format": {"type": "json_object"}}},
        "max_output_tokens": base | {"input": "Hello there you", "max_output_tokens": 2},
        "sampling and metadata": base | {"input": "Hello", "temperature": 0.2, "top_p": 0.9},
        "store false": base | {"input": "Hello", "store": False, "user": "someone"},
    }
    if model == DEFAULT_MODEL:
        cases |= {
            "prompt cache and safety identifier": base
            | {"input": "Hello", "prompt_cache_key": "k", "safety_identifier": "s", "metadata": {"k": "v"}}
        }
    return cases


def response_stream_events(server: FunctionServer, user: User, body: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", server.url + RESPONSES, json={**body, "stream": True}, headers=user.headers
        ) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        for event in source.iter_sse():
            data = json.loads(event.data)
            assert event.event == data["type"]  # the SSE event name is the event's type
            events.append(data)
    return events


@pytest.mark.parametrize("model", [DEFAULT_MODEL, LOCAL])
def test_every_response_object_validates_against_openais_spec(
    chat_server: FunctionServer, user: User, model: str
) -> None:
    found: dict[str, list[str]] = {}
    for name, body in responses_matrix(model).items():
        response = httpx.post(chat_server.url + RESPONSES, json=body, headers=user.headers, timeout=30)
        assert response.status_code == 200, (name, response.text)
        if problems := violations("Response", response.json()):
            found[name] = problems
    assert not found, json.dumps(found, indent=1)


@pytest.mark.parametrize("model", [DEFAULT_MODEL, LOCAL])
def test_every_response_stream_event_validates_against_openais_spec(
    chat_server: FunctionServer, user: User, model: str
) -> None:
    found: dict[str, list[str]] = {}
    for name, body in responses_matrix(model).items():
        events = response_stream_events(chat_server, user, body)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert events[0]["type"] == "response.created" and events[-1]["type"] in (
            "response.completed",
            "response.incomplete",
        )
        if problems := [p for event in events for p in stream_event_violations(event)]:
            found[name] = problems
    assert not found, json.dumps(found, indent=1)


def test_response_errors_validate_against_openais_spec(chat_server: FunctionServer, user: User) -> None:
    url = chat_server.url + RESPONSES
    answers = {
        "unknown field": httpx.post(url, json={"input": "hi", "frobnicate": 1}, headers=user.headers),
        "stored state": httpx.post(url, json={"input": "hi", "previous_response_id": "resp_1"}, headers=user.headers),
        "built-in tool": httpx.post(url, json={"input": "hi", "tools": [{"type": "web_search"}]}, headers=user.headers),
        "no token": httpx.post(url, json={"input": "hi"}),
        "unknown model": httpx.get(chat_server.url + "/v1/models/openai/nope", headers=user.headers),
    }
    assert all(r.status_code >= 400 for r in answers.values())
    found = {name: violations("ErrorResponse", r.json()) for name, r in answers.items()}
    assert not any(found.values()), found


def test_a_response_stream_the_provider_cuts_ends_with_error_and_failed_events(
    chat_server: FunctionServer, user: User, fake_lago: FakeLago
) -> None:
    events = response_stream_events(chat_server, user, {"input": "#words:10 #cut:3"})
    [event] = fake_lago.events(user.uid)  # billed before the last event, as partial
    assert event["properties"]["partial"] == "true" and event["transaction_id"] == events[0]["response"]["id"]
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert [p for event in events for p in stream_event_violations(event)] == []
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "word0 word1 word2 "


def test_one_model_validates_against_openais_spec(chat_server: FunctionServer, user: User) -> None:
    response = httpx.get(chat_server.url + f"/v1/models/{LOCAL}", headers=user.headers)
    assert response.status_code == 200 and response.json()["id"] == LOCAL
    assert violations("Model", response.json()) == []
