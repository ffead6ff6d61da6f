"""``POST /v1/responses`` and ``GET /v1/models/{id}`` against openapi.yaml, the contract: the
running server's answers validate against it, and fuzzed Responses bodies (schemathesis, from the
document) get no 5xx, errors in our shape, and only successes billed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from schemathesis import GenerationMode

from standins.lago import FakeLago
from standins.processes import FunctionServer
from tests.conftest import DEFAULT_MODEL, User
from tests.test_abuse import CONFORMANCE, FUZZ_SETTINGS, REQUEST_TIMEOUT_S, SCHEMA, rejects_negative_data, sse_data

RESPONSES_POST = SCHEMA["/v1/responses"]["POST"]
MODEL_GET = SCHEMA["/v1/models/{model}"]["GET"]


@pytest.fixture
def user_headers(user: User) -> dict[str, str]:
    return user.headers


@pytest.mark.parametrize(
    "body",
    [
        {"model": DEFAULT_MODEL, "input": "hello"},
        {"model": "local/demo", "input": [{"role": "user", "content": "hi"}], "instructions": "Be brief."},
        {
            "input": "weather?",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": "required",
        },
    ],
)
def test_response_objects_match_the_document(
    chat_server: FunctionServer, user_headers: dict[str, str], body: Any
) -> None:
    case = RESPONSES_POST.Case(body=body, headers=user_headers, media_type="application/json")
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=CONFORMANCE)
    request_id = response.headers["x-request-id"]  # schemathesis keeps every value of a header
    assert (request_id[0] if isinstance(request_id, list) else request_id) == response.json()["id"]


def test_response_streams_match_the_document(chat_server: FunctionServer, user_headers: dict[str, str]) -> None:
    case = RESPONSES_POST.Case(
        body={"input": "hi", "stream": True}, headers=user_headers, media_type="application/json"
    )
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    case.validate_response(response, checks=CONFORMANCE)
    events = [json.loads(data) for data in sse_data(response.text)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"


@pytest.mark.parametrize(("model", "status"), [("local/demo", 200), (DEFAULT_MODEL, 200), ("openai/nope", 404)])
def test_model_retrieval_matches_the_document(
    chat_server: FunctionServer, user_headers: dict[str, str], model: str, status: int
) -> None:
    response = MODEL_GET.Case(path_parameters={"model": model}, headers=user_headers).call(
        base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S
    )
    assert response.status_code == status, response.text
    MODEL_GET.Case(path_parameters={"model": model}, headers=user_headers).validate_response(
        response, checks=CONFORMANCE[1:]
    )


@pytest.fixture
def billed_only_successes(fake_lago: FakeLago, user: User) -> Iterator[list[str]]:
    succeeded: list[str] = []
    yield succeeded
    billed = [e["transaction_id"] for e in fake_lago.events(user.uid)]
    assert sorted(billed) == sorted(succeeded), "a rejected request was billed, or a success was not"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_responses_bodies_get_no_5xx_and_only_successes_are_billed(
    chat_server: FunctionServer, user: User, billed_only_successes: list[str], mode: GenerationMode
) -> None:
    checks = [*CONFORMANCE, rejects_negative_data] if mode is GenerationMode.NEGATIVE else CONFORMANCE
    statuses: list[int] = []

    @FUZZ_SETTINGS(max_examples=60)
    @given(case=RESPONSES_POST.as_strategy(mode, headers=user.headers))
    def run(case: Any) -> None:
        assume("#" not in json.dumps(case.body, default=str))  # the stand-in's directives steer it
        response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
        case.validate_response(response, checks=checks)
        statuses.append(response.status_code)
        if response.status_code == 200:
            stream = response.headers.get("content-type", [""])
            text = stream[0] if isinstance(stream, list) else stream
            body = (
                json.loads(sse_data(response.text)[0])["response"]
                if text.startswith("text/event-stream")
                else response.json()
            )
            billed_only_successes.append(body["id"])

    run()
    assert statuses, "the fuzzer made no call"
    if mode is GenerationMode.NEGATIVE:
        assert 200 not in statuses
    else:
        assert statuses.count(200) > len(statuses) // 3, f"valid bodies were mostly refused: {statuses}"
