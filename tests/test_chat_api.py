"""The chat function's HTTP contract, through a real functions-framework server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from standins.lago import FakeLago
from standins.processes import FunctionServer
from tests.conftest import DEFAULT_MODEL, OPENAI_KEY, User
from tests.support.api import CHAT, chat, messages


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    return error


def test_json_completion_answers_in_openai_shape(chat_server: FunctionServer, user: User, fake_lago: FakeLago) -> None:
    response = chat(chat_server, user, {"model": DEFAULT_MODEL, "messages": messages("one two three")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == DEFAULT_MODEL
    assert body["id"].startswith("chatcmpl-")
    message = {"role": "assistant", "content": "word0 word1 word2 word3 word4", "refusal": None}
    assert body["choices"][0]["message"] == message and body["choices"][0]["logprobs"] is None
    cost = body["usage"].pop("cost")  # what the answer cost, as billed
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    [event] = fake_lago.events(user.uid)
    assert cost == event["properties"]["response_cost"] > 0


def test_model_defaults_to_first_allowed_model(chat_server: FunctionServer, user: User, fake_llm) -> None:
    response = chat(chat_server, user, {"messages": messages("default model please")})
    assert response.status_code == 200
    assert response.json()["model"] == DEFAULT_MODEL
    assert fake_llm.requests[-1]["model"] == "gpt-4o-mini"


def test_streaming_sends_chunks_usage_then_done(chat_server: FunctionServer, user: User, fake_lago: FakeLago) -> None:
    body = {"messages": messages("stream me"), "stream": True, "stream_options": {"include_usage": True}}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", chat_server.url + CHAT, json=body, headers=user.headers) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        data = [event.data for event in source.iter_sse()]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "word0 word1 word2 word3 word4"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    # The usage chunk also says what the answer cost, as it was billed (the page shows it).
    [event] = fake_lago.events(user.uid)
    assert chunks[-1]["usage"]["cost"] == event["properties"]["response_cost"] > 0


def test_streamed_tool_call_reaches_the_client_as_delta_tool_calls(chat_server: FunctionServer, user: User) -> None:
    body = {"messages": messages("weather? #toolcall"), "stream": True, "stream_options": {"include_usage": True}}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", chat_server.url + CHAT, json=body, headers=user.headers) as source,
    ):
        chunks = [json.loads(event.data) for event in source.iter_sse() if event.data != "[DONE]"]
    pieces = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert pieces[0]["function"]["name"] == "get_weather"
    arguments = "".join(p["function"].get("arguments") or "" for p in pieces)
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]


def test_streaming_without_include_usage_sends_no_usage_chunk(chat_server: FunctionServer, user: User) -> None:
    body = {"messages": messages("stream me"), "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", chat_server.url + CHAT, json=body, headers=user.headers) as source,
    ):
        data = [event.data for event in source.iter_sse()]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["choices"] for d in data[:-1])


def test_official_openai_client_works_json_and_stream(chat_server: FunctionServer, user: User) -> None:
    client = openai.OpenAI(base_url=f"{chat_server.url}/v1", api_key=user.token, max_retries=0)
    completion = client.chat.completions.create(model=DEFAULT_MODEL, messages=messages("hi"))
    assert completion.choices[0].message.content == "word0 word1 word2 word3 word4"
    assert completion.usage is not None and completion.usage.total_tokens == 9
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=messages("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "word0 word1 word2 word3 word4"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_max_tokens_is_capped_by_settings(function_server, fake_llm, user: User) -> None:
    server = function_server(CHAT_MAX_TOKENS="3")
    response = chat(server, user, {"messages": messages("#words:10"), "max_tokens": 50})
    assert response.status_code == 200
    assert fake_llm.requests[-1]["max_tokens"] == 3
    assert response.json()["usage"]["completion_tokens"] == 3


def test_user_field_does_not_reach_provider_or_billing(
    chat_server: FunctionServer, user: User, fake_llm, fake_lago
) -> None:
    response = chat(chat_server, user, {"messages": messages(), "user": "someone-else"})
    assert response.status_code == 200
    assert fake_llm.requests[-1]["user"].startswith("uid-") and "someone-else" not in json.dumps(fake_llm.requests[-1])
    assert [e["external_subscription_id"] for e in fake_lago.events(user.uid)] == [user.uid]


def test_local_demo_model_answers_without_a_provider(chat_server: FunctionServer, user: User) -> None:
    response = chat(chat_server, user, {"model": "local/demo", "messages": messages("ping")})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "This is the local demo model. You said: ping"
    assert body["usage"]["completion_tokens"] > 0 and body["usage"]["prompt_tokens"] > 0


# --- bad input: the documented 4xx JSON error, never a 500 ----------------------------------


# The whole matrix is a unit test of the parser (tests/unit/test_chat_fields.py); through the
# server, one refusal of each status.
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        ({"messages": messages(), "model": "gpt-9-secret"}, 404, "model_not_found"),
    ],
)
def test_bad_bodies_get_documented_4xx(chat_server: FunctionServer, user: User, body, status, code) -> None:
    assert_error(chat(chat_server, user, body), status, code)


@pytest.mark.parametrize(
    "authorization",
    # The header's other shapes never reach firebase-admin: tests/unit/test_routes.py.
    ["Bearer not-a-jwt", "Bearer a.b.c"],
)
def test_missing_or_garbled_authorization_is_401(chat_server: FunctionServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_error(chat(chat_server, None, {"messages": messages()}, headers=headers), 401, "invalid_api_key")


def test_cors_preflight_allows_configured_origin(chat_server: FunctionServer) -> None:
    response = httpx.options(
        chat_server.url + "/api" + CHAT,
        headers={
            "Origin": "https://chat.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "POST" in response.headers["access-control-allow-methods"]


# --- provider failures map to OpenAI's statuses ---------------------------------------------


# Each of LiteLLM's exceptions is mapped in tests/unit/test_provider_errors.py; through the
# server, a provider's 429 (the provider's timeout: test_faults.py).
@pytest.mark.parametrize(("directive", "status", "code"), [("#status:429", 429, "rate_limit_exceeded")])
def test_provider_errors_map_to_openai_statuses(
    chat_server: FunctionServer, user: User, directive: str, status: int, code: str
) -> None:
    error = assert_error(chat(chat_server, user, {"messages": messages(directive)}), status, code)
    assert OPENAI_KEY not in json.dumps(error)


def test_provider_error_before_stream_starts_is_a_json_error(chat_server: FunctionServer, user: User) -> None:
    response = chat(chat_server, user, {"messages": messages("#status:503"), "stream": True})
    assert_error(response, 503, "service_unavailable")


def test_stream_cut_midway_ends_with_one_error_event(chat_server: FunctionServer, user: User) -> None:
    body = {"messages": messages("#cut:2 #words:6"), "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", chat_server.url + CHAT, json=body, headers=user.headers) as source,
    ):
        data = [event.data for event in source.iter_sse()]
    assert "[DONE]" not in data
    assert "error" in json.loads(data[-1])
    assert all("error" not in json.loads(d) for d in data[:-1])


def test_logs_are_json_lines_with_trace_and_no_secrets(chat_server: FunctionServer, user: User) -> None:
    trace = "105445aa7843bc8bf206b12000100000/1;o=1"
    chat(
        chat_server,
        user,
        {"messages": messages("#status:429 secret prompt words")},
        headers={"X-Cloud-Trace-Context": trace},
    )
    logs = chat_server.logs()
    lines = chat_server.log_lines()
    failed = [line for line in lines if line["message"] == "llm_call_failed"]
    assert failed and failed[-1]["severity"] == "WARNING"
    assert failed[-1]["logging.googleapis.com/trace"].endswith("/traces/105445aa7843bc8bf206b12000100000")
    assert user.uid not in logs and user.token not in logs
    assert OPENAI_KEY not in logs and "secret prompt words" not in logs
