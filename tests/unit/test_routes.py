"""The HTTP layer (``serving.serve`` and the chat function's routes) in process, no server: the
instance is the local run's kind, built by ``instance._build`` (the embedded ``local/demo``
model, limits in memory, no Lago), its ID-token check a list of one token (firebase-admin's
checks are end to end: tests/test_auth.py); requests go through Flask's test client.

Routing, CORS, the error shape, the misconfigured instance's 503, the request id: these were
end-to-end tests (test_chat_api.py, test_chat_surface.py, test_app_check.py, test_abuse.py);
one representative of each still goes through the running server there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import flask
import jsonschema
import pytest
import yaml
from flask.testing import FlaskClient

from shared.auth import Caller, TokenVerifier
from shared.chat_params import supported_fields
from shared.errors import ApiError, ErrorCode
from shared.instance import BrokenInstance, Instance, _build
from shared.routes import CHAT_ROUTES
from shared.serving import Routes, serve
from standins.processes import ROOT
from tests.support.api import CHAT, DEFAULT_MODEL, messages

PROJECT = "demo-unit"
TOKEN = "the-one-good-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# The session chat server's models and origins (tests/conftest.py's base_env).
ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "CHAT_MODELS": f"{DEFAULT_MODEL},local/demo,openai/not-in-cost-map",
    "CORS_ORIGINS": "http://localhost:5002,https://chat.example.com",
}
LOCAL = "local/demo"  # answers in process: no provider
DOCUMENT = yaml.safe_load((ROOT / "openapi.yaml").read_text())
ERROR_SHAPE = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/ErrorResponse", **DOCUMENT})


class Verifier(TokenVerifier):
    """The real Authorization header parsing; of ID tokens, only ``TOKEN`` is valid."""

    def verify_id_token(self, token: str) -> Caller:
        if token != TOKEN:
            raise ApiError(ErrorCode.UNAUTHENTICATED, "Invalid or expired Firebase ID token.")
        return Caller("uid-unit", {"email": "unit@example.com", "email_verified": True})


def build(**env: str) -> Instance | BrokenInstance:
    verifier = Verifier(PROJECT, check_revoked=False, allow_anonymous=False, deployed=False)
    instance = _build({**ENV, **env}, verifier)
    # What each model supports is cached per process, and other unit tests parse requests for
    # local/demo before any instance registered it with LiteLLM (a server registers it first).
    supported_fields.cache_clear()
    return instance


def client(instance: Instance | BrokenInstance, routes: Routes = CHAT_ROUTES) -> FlaskClient:
    """A Flask app that hands every request to ``serve``, as functions/main.py does."""
    app = flask.Flask(__name__)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.route("/", defaults={"path": ""}, methods=methods)
    @app.route("/<path:path>", methods=methods)
    def handle(path: str) -> flask.Response:
        return serve(flask.request, instance, routes)

    return app.test_client()


@pytest.fixture(scope="module")
def chat_server() -> FlaskClient:
    return client(build())


def post(api: FlaskClient, body: object, path: str = CHAT, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return api.post(path, data=data, headers={**BEARER, **(headers or {})}, content_type="application/json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["content-type"].startswith("application/json")
    ERROR_SHAPE.validate(response.get_json())
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == code
    return error


def sse(response: Any) -> list[Any]:
    lines = response.get_data(as_text=True).split("\n\n")
    data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]", data[-1]
    return [json.loads(d) for d in data[:-1]]


# --- routing (was test_chat_api.py) --------------------------------------------------------------


def test_hosting_rewrite_prefix_is_served(chat_server: FlaskClient) -> None:
    response = post(chat_server, {"model": LOCAL, "messages": messages()}, path="/api/v1/chat/completions")
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(chat_server: FlaskClient, method: str) -> None:
    response = chat_server.open(CHAT, method=method, headers=BEARER)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("path", ["/", "/v1/completions", "/v1/chat/completions/extra", "/v2/chat/completions"])
def test_wrong_path_is_404(chat_server: FlaskClient, path: str) -> None:
    assert_error(post(chat_server, {"messages": messages()}, path=path), 404, "not_found")


# Past the header's shape, the token itself is firebase-admin's to judge: tests/test_auth.py and
# the end-to-end cases left in test_chat_api.py.
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "token abc"])
def test_missing_or_garbled_authorization_is_401(chat_server: FlaskClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = chat_server.post(CHAT, data=json.dumps({"messages": messages()}), headers=headers)
    assert_error(response, 401, "invalid_api_key")


def test_a_caller_without_a_token_is_refused_before_the_body_is_read(chat_server: FlaskClient) -> None:
    too_big = json.dumps({"messages": messages("x" * (300 * 1024))})
    assert_error(chat_server.post(CHAT, data=too_big), 401, "invalid_api_key")


def test_oversized_body_is_413(chat_server: FlaskClient) -> None:
    body = {"messages": messages("x" * (300 * 1024))}
    assert_error(post(chat_server, body), 413, "request_too_large")


def test_models_lists_the_allowed_models_default_first(chat_server: FlaskClient) -> None:
    response = chat_server.get("/api/v1/models", headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    created = body["data"][0]["created"]
    assert body == {
        "object": "list",
        "data": [
            {"id": DEFAULT_MODEL, "object": "model", "created": created, "owned_by": "openai"},
            {"id": "local/demo", "object": "model", "created": created, "owned_by": "local"},
            {"id": "openai/not-in-cost-map", "object": "model", "created": created, "owned_by": "openai"},
        ],
    }


def test_models_needs_a_token_and_get(chat_server: FlaskClient) -> None:
    assert_error(chat_server.get("/v1/models"), 401, "invalid_api_key")
    assert_error(chat_server.post("/v1/models", headers=BEARER), 405, "method_not_allowed")
    preflight = chat_server.options(
        "/v1/models", headers={"Origin": "https://chat.example.com", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204 and "GET" in preflight.headers["access-control-allow-methods"]


def test_models_carry_created(chat_server: FlaskClient) -> None:  # was test_chat_surface.py
    models = chat_server.get("/v1/models", headers=BEARER).get_json()["data"]
    assert all(isinstance(m["created"], int) and m["created"] > 0 for m in models)


# --- CORS (was test_chat_api.py, test_chat_surface.py, test_app_check.py) -----------------------


def test_cors_preflight_allows_configured_origin(chat_server: FlaskClient) -> None:
    response = chat_server.options(
        "/api" + CHAT,
        headers={
            "Origin": "https://chat.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "POST" in response.headers["access-control-allow-methods"]


def test_cors_preflight_refuses_other_origins(chat_server: FlaskClient) -> None:
    response = chat_server.options(CHAT, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_cors_headers_on_answers_and_errors(chat_server: FlaskClient) -> None:
    origin = {"Origin": "http://localhost:5002"}
    ok = post(chat_server, {"model": LOCAL, "messages": messages()}, headers=origin)
    bad = chat_server.post(CHAT, data=json.dumps({"messages": messages()}), headers=origin)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:5002"
    assert bad.status_code == 401 and bad.headers["access-control-allow-origin"] == "http://localhost:5002"
    assert ok.headers["access-control-expose-headers"] == "x-request-id" and "Origin" in ok.headers["vary"]


def test_cors_preflight_allows_the_openai_packages_headers_for_configured_origins(chat_server: FlaskClient) -> None:
    asked = "authorization, content-type, x-stainless-os, x-stainless-lang, x-stainless-retry-count, x-request-id"
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": asked}
    ok = chat_server.options(CHAT, headers={**headers, "Origin": "https://chat.example.com"})
    assert ok.status_code == 204
    allowed = {h.strip() for h in ok.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in asked.split(",")} <= allowed
    evil = chat_server.options(CHAT, headers={**headers, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and "access-control-allow-headers" not in evil.headers


def test_cors_preflight_allows_the_app_check_header(chat_server: FlaskClient) -> None:
    response = chat_server.options(
        CHAT,
        headers={
            "Origin": "https://chat.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-firebase-appcheck",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://chat.example.com"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-firebase-appcheck"} <= allowed


# --- the misconfigured instance (was test_chat_api.py) ------------------------------------------


@pytest.fixture(scope="module")
def misconfigured_server() -> FlaskClient:
    """An instance whose settings cannot be used: it answers every request with a 503."""
    instance = build(CHAT_MAX_TOKENS="abc")
    assert isinstance(instance, BrokenInstance)
    return client(instance)


def test_misconfigured_instance_answers_503_that_a_browser_can_read(misconfigured_server: FlaskClient) -> None:
    origin = "https://chat.example.com"
    response = post(misconfigured_server, {"messages": messages()}, headers={"Origin": origin})
    error = assert_error(response, 503, "service_unavailable")
    assert "misconfigured" in str(error["message"])
    assert "CHAT_MAX_TOKENS" not in response.get_data(as_text=True), "the keys are for the operators' log"
    assert response.headers["access-control-allow-origin"] == origin


def test_misconfigured_instance_still_answers_the_cors_preflight(misconfigured_server: FlaskClient) -> None:
    response = misconfigured_server.options(
        CHAT, headers={"Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert response.headers["access-control-allow-methods"] == "POST, OPTIONS"


# --- answers and errors: the request id, the error shape (was test_chat_surface.py, test_abuse.py)


def test_a_json_answer_carries_its_call_id_as_the_request_id(chat_server: FlaskClient) -> None:
    response = post(chat_server, {"model": LOCAL, "messages": messages()})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == response.get_json()["id"]


def test_a_stream_is_uncached_event_stream_whose_chunks_carry_the_request_id(chat_server: FlaskClient) -> None:
    response = post(chat_server, {"model": LOCAL, "messages": messages("one two"), "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    assert {chunk["id"] for chunk in sse(response)} == {response.headers["x-request-id"]}


def test_errors_carry_a_request_id_too(chat_server: FlaskClient) -> None:
    response = post(chat_server, {"messages": messages(), "frobnicate": 1})
    assert response.status_code == 400 and response.headers["x-request-id"].startswith("req_")


def test_document_lists_every_error_status_the_chat_function_can_answer() -> None:
    documented = set(DOCUMENT["paths"][CHAT]["post"]["responses"])
    assert {str(code.status) for code in ErrorCode} <= documented | {"405"}


def test_an_unexpected_error_is_a_generic_500_that_names_nothing_internal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    instance = build()
    assert isinstance(instance, Instance)

    def broken(*_: object) -> None:
        raise RuntimeError("secret internals /srv/app.py")

    monkeypatch.setattr(instance.chat, "complete", broken)
    response = post(client(instance), {"model": LOCAL, "messages": messages()})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True) and error["message"]
    [line] = [r for r in caplog.records if r.getMessage() == "unhandled_error"]
    assert line.fields == {"error_class": "RuntimeError"}  # type: ignore[attr-defined]


# --- the local model through the route (was test_chat_surface.py) --------------------------------

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


def test_local_model_calls_a_tool_its_prompt_names(chat_server: FlaskClient) -> None:
    body = {
        "model": "local/demo",
        "messages": [{"role": "user", "content": "use get_weather for Oslo"}],
        "tools": [WEATHER],
    }
    choice = post(chat_server, body).get_json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "use get_weather for Oslo", "days": 1}
    plain = post(chat_server, {**body, "messages": [{"role": "user", "content": "hello"}]}).get_json()
    assert plain["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in plain["choices"][0]["message"]


def test_local_model_streams_a_tool_call(chat_server: FlaskClient) -> None:
    body = {
        "model": "local/demo",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "stream": True,
    }
    chunks = sse(post(chat_server, body))
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"].get("arguments") or "" for c in calls)) == {"city": "hi", "days": 1}
    assert [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason")] == ["tool_calls"]


def test_local_model_honours_n_and_stop(chat_server: FlaskClient) -> None:
    body = {"model": "local/demo", "messages": [{"role": "user", "content": "one two three"}], "n": 3, "stop": " two"}
    choices = post(chat_server, body).get_json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert {c["message"]["content"] for c in choices} == {"This is the local demo model. You said: one"}
    chunks: Iterator[Any] = iter(sse(post(chat_server, {**body, "stream": True})))
    texts = {i: "" for i in range(3)}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert set(texts.values()) == {"This is the local demo model. You said: one"}
