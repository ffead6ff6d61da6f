"""Abuse: the server against its OpenAPI document, fuzzed bodies and headers, and token attacks.

The document (``openapi.yaml``) is the contract: every response the running server gives must
validate against it. Fuzzing (schemathesis's generators driven by Hypothesis) checks that no
input gets a 5xx or hangs, that every error has our one shape, and that only requests that
succeeded were billed. Token attacks go through the production verification path.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from standins.google_certs import FakeGoogleCerts
from standins.lago import FakeLago
from standins.processes import ROOT, AuthEmulator, FunctionServer
from tests.conftest import DEFAULT_MODEL, PRICED_MODELS, PROJECT_ID, User
from tests.support.api import CHAT, Bearer, chat, messages

DOCUMENT = yaml.safe_load((ROOT / "openapi.yaml").read_text())
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
CHAT_POST = SCHEMA[CHAT]["POST"]
CHAT_OPTIONS = SCHEMA[CHAT]["OPTIONS"]
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
REQUEST_TIMEOUT_S = 15  # "no hang": the slowest legitimate answer here takes well under a second


def FUZZ_SETTINGS(max_examples: int) -> settings:
    """Bounded and reproducible: a fixed seed, no example database, and no shrinking (which can
    take minutes against a live server); a failure is reported as generated."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=(Phase.explicit, Phase.generate),
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )


def component(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the document's schemas (its ``$ref``s resolve within the document)."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOCUMENT})


ERROR_SHAPE = component("ErrorResponse")
CHUNK_SHAPE = component("ChatCompletionChunk")


def sse_data(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def success_id(response: Any) -> str:
    """The call id of a 200, JSON or stream (every chunk carries it)."""
    content_type = response.headers.get("content-type") or response.headers.get("Content-Type")
    if isinstance(content_type, list):  # schemathesis's Response keeps every value of a header
        content_type = content_type[0]
    if content_type.startswith("text/event-stream"):
        return json.loads(sse_data(response.text)[0])["id"]
    return response.json()["id"]


@pytest.fixture(scope="module")
def fuzz_user(auth_emulator: AuthEmulator) -> User:
    email = f"fuzz-{time.monotonic_ns()}@example.com"
    uid, token = auth_emulator.sign_up(email)
    return User(uid, token, email)


# --- the contract: the running server's answers validate against openapi.yaml ---------------


@pytest.mark.parametrize(
    "body",
    [
        {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hello"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}], "temperature": 0.5},
        {"model": "local/demo", "messages": [{"role": "user", "content": "local"}]},
    ],
)
def test_json_answers_match_the_document(chat_server: FunctionServer, fuzz_user: User, body: dict[str, Any]) -> None:
    case = CHAT_POST.Case(body=body, headers=fuzz_user.headers, media_type="application/json")
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=CONFORMANCE)


@pytest.mark.parametrize("include_usage", [True, False])
def test_streams_match_the_document(chat_server: FunctionServer, fuzz_user: User, include_usage: bool) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": include_usage},
    }
    case = CHAT_POST.Case(body=body, headers=fuzz_user.headers, media_type="application/json")
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    case.validate_response(response, checks=CONFORMANCE)
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    for chunk in data[:-1]:
        CHUNK_SHAPE.validate(json.loads(chunk))
    assert ("usage" in json.loads(data[-2])) is include_usage


def test_stream_cut_midway_ends_with_an_error_event_in_our_shape(chat_server: FunctionServer, fuzz_user: User) -> None:
    body = {"messages": [{"role": "user", "content": "#cut:2 #words:6"}], "stream": True}
    response = httpx.post(chat_server.url + CHAT, json=body, headers=fuzz_user.headers, timeout=REQUEST_TIMEOUT_S)
    data = sse_data(response.text)
    ERROR_SHAPE.validate(json.loads(data[-1]))
    for chunk in data[:-1]:
        CHUNK_SHAPE.validate(json.loads(chunk))


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", None, 400),
        ({"messages": []}, None, 400),
        ({"messages": [{"role": "user", "content": "x"}]}, {"Authorization": "Bearer forged"}, 401),
        ({"messages": [{"role": "user", "content": "x"}], "model": "gpt-secret"}, None, 404),
        ({"messages": [{"role": "user", "content": "x" * 300_000}]}, None, 413),
        ({"messages": [{"role": "user", "content": "#status:429"}]}, None, 429),
        ({"messages": [{"role": "user", "content": "#status:500"}]}, None, 502),
        ({"messages": [{"role": "user", "content": "#status:503"}]}, None, 503),
    ],
)
def test_errors_match_the_document(
    chat_server: FunctionServer, fuzz_user: User, body: Any, headers: dict[str, str] | None, status: int
) -> None:
    case = CHAT_POST.Case(body=body, headers=headers or fuzz_user.headers, media_type="application/json")
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == status, response.text
    case.validate_response(response, checks=CONFORMANCE[1:])  # 5xx are expected here


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", CHAT, 405), ("DELETE", CHAT, 405), ("POST", "/v2", 404)]
)
def test_undocumented_methods_and_paths_answer_in_the_error_shape(
    chat_server: FunctionServer, fuzz_user: User, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, chat_server.url + path, headers=fuzz_user.headers, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == status
    ERROR_SHAPE.validate(response.json())
    if status == 405:
        assert response.headers["allow"] == "POST, OPTIONS"


@pytest.mark.parametrize(("origin", "status"), [("https://chat.example.com", 204), ("https://evil.example", 403)])
def test_preflight_matches_the_document(chat_server: FunctionServer, origin: str, status: int) -> None:
    case = CHAT_OPTIONS.Case(headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == status
    case.validate_response(response, checks=CONFORMANCE)


def test_replay_answer_matches_the_document(function_server: Callable[..., FunctionServer]) -> None:
    server = function_server(target="replay_billing")
    case = SCHEMA["/"]["POST"].Case()
    response = case.call(base_url=server.url, timeout=60)
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=CONFORMANCE)
    wrong = httpx.get(server.url + "/", timeout=10)
    assert wrong.status_code == 405
    ERROR_SHAPE.validate(wrong.json())


# --- fuzzing: no 5xx, no hang, errors in our shape, and only successes billed ----------------


@pytest.fixture
def billed_only_successes(fake_lago: FakeLago, fuzz_user: User) -> Iterator[list[str]]:
    """Collects the ids of the fuzzer's successful calls; afterwards Lago must hold exactly those."""
    before = {e["transaction_id"] for e in fake_lago.events(fuzz_user.uid)}
    succeeded: list[str] = []
    yield succeeded
    billed = [e["transaction_id"] for e in fake_lago.events(fuzz_user.uid) if e["transaction_id"] not in before]
    assert sorted(billed) == sorted(succeeded), "a rejected request was billed, or a success was not"


def _no_directives(case: Any) -> bool:
    # The LLM stand-in obeys '#sleep:…', '#hold' and '#status:…' in prompts; the fuzzer must not steer it.
    return "#" not in json.dumps(case.body, default=str)


def _within_cross_field_rules(body: Any) -> bool:
    """The rules openapi.yaml states in words, which its schemas cannot: an assistant message has
    content or tool calls, the others have content, a tool message names its call, and
    top_logprobs needs logprobs: true. Positive mode counts on bodies that keep them."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return True
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        return False
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return False  # null counts as absent here, not in the document's schema
    for message in body["messages"]:
        if not isinstance(message, dict):
            return True
        if message.get("role") == "assistant":
            if message.get("content") is None and not message.get("tool_calls"):
                return False
        elif message.get("content") is None:
            return False
        if message.get("role") == "tool" and not isinstance(message.get("tool_call_id"), str):
            return False
    return True


def rejects_negative_data(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' negative-data check, with a 413 counted as a refusal too: a schema-violating
    body (too many messages, say) may first be too large for ``CHAT_MAX_BODY_BYTES``."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_bodies_get_no_5xx_and_only_successes_are_billed(
    chat_server: FunctionServer, fuzz_user: User, billed_only_successes: list[str], mode: GenerationMode
) -> None:
    checks = [*CONFORMANCE, rejects_negative_data] if mode is GenerationMode.NEGATIVE else CONFORMANCE
    statuses: list[int] = []

    @FUZZ_SETTINGS(max_examples=100)
    @given(case=CHAT_POST.as_strategy(mode, headers=fuzz_user.headers))
    def run(case: Any) -> None:
        assume(_no_directives(case))
        if mode is GenerationMode.POSITIVE:
            assume(_within_cross_field_rules(case.body))
        response = case.call(base_url=chat_server.url, timeout=REQUEST_TIMEOUT_S)
        case.validate_response(response, checks=checks)
        statuses.append(response.status_code)
        if response.status_code == 200:
            billed_only_successes.append(success_id(response))

    run()
    assert statuses, "the fuzzer made no call"
    if mode is GenerationMode.POSITIVE:
        assert statuses.count(200) > len(statuses) // 2, f"valid bodies were mostly refused: {statuses}"
    else:
        assert 200 not in statuses


# Header values as HTTP allows them: printable ASCII, no surrounding whitespace.
_HEADER_TEXT = st.text(alphabet=string.printable.strip() + " ", max_size=300).map(str.strip)


@st.composite
def header_sets(draw: st.DrawFn, token: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    auth = draw(
        st.one_of(
            st.just(f"Bearer {token}"),
            st.builds(lambda s: f"Bearer {s}".strip(), _HEADER_TEXT),
            st.builds(lambda s: f"Bearer {token}{s}".strip(), _HEADER_TEXT),
            _HEADER_TEXT,
            st.none(),
        )
    )
    if auth is not None:
        headers["Authorization"] = auth
    content_type = draw(
        st.one_of(st.none(), st.sampled_from(["application/json", "text/plain", "multipart/form-data"]), _HEADER_TEXT)
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    for name in ("Origin", "X-Cloud-Trace-Context", "Accept", "Accept-Encoding"):
        value = draw(st.one_of(st.none(), _HEADER_TEXT))
        if value is not None:
            headers[name] = value
    extra = draw(st.dictionaries(st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True), _HEADER_TEXT, max_size=3))
    return {**extra, **headers}


def test_fuzzed_headers_get_no_5xx_and_only_successes_are_billed(
    chat_server: FunctionServer, fuzz_user: User, billed_only_successes: list[str]
) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "fuzzed headers"}]})
    statuses: list[int] = []

    @FUZZ_SETTINGS(max_examples=120)
    @given(headers=header_sets(fuzz_user.token))
    def run(headers: dict[str, str]) -> None:
        response = httpx.post(chat_server.url + CHAT, content=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
        assert response.status_code < 500, response.text
        statuses.append(response.status_code)
        if response.status_code == 200:
            # Emulator tokens are unsigned, so only their header and claims must be the user's.
            sent = headers["Authorization"].split()[-1]
            assert sent.split(".")[:2] == fuzz_user.token.split(".")[:2]
            billed_only_successes.append(success_id(response))
        else:
            ERROR_SHAPE.validate(response.json())

    run()
    assert 200 in statuses and 401 in statuses


# --- token attacks on the production verification path (tests/test_auth.py has the rest) -----


ATTACK = {"messages": messages("attack")}


def assert_refused_and_unbilled(response: httpx.Response, fake_lago: FakeLago, uid: str) -> None:
    assert response.status_code == 401, response.text
    ERROR_SHAPE.validate(response.json())
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert fake_lago.events(uid) == []


def test_valid_token_in_body_or_query_is_401_on_the_production_path(
    prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts, fake_lago: FakeLago
) -> None:
    token = google_certs.mint(PROJECT_ID, "attack-body-query")
    body = {"messages": [{"role": "user", "content": "x"}], "id_token": token, "api_key": token, "token": token}
    assert_refused_and_unbilled(chat(prod_auth_server, None, body), fake_lago, "attack-body-query")
    for name in ("access_token", "id_token", "key", "token", "auth"):
        response = chat(prod_auth_server, None, ATTACK, params={name: token})
        assert_refused_and_unbilled(response, fake_lago, "attack-body-query")


# One header with more than one token, or another scheme: tests/unit/test_token_checks.py. Here,
# what only HTTP can send: the header twice.
@pytest.mark.parametrize("shape", ["two_headers", "valid_then_forged_header"])
def test_ambiguous_authorization_is_401_on_the_production_path(
    prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts, fake_lago: FakeLago, shape: str
) -> None:
    uid = f"attack-{shape}"
    good = google_certs.mint(PROJECT_ID, uid)
    forged = google_certs.mint(PROJECT_ID, uid, key=google_certs.other_key)
    headers: list[tuple[str, str]] = {
        "two_tokens_one_header": [("Authorization", f"Bearer {good} {good}")],
        "comma_separated": [("Authorization", f"Bearer {good}, Bearer {good}")],
        "two_headers": [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {good}")],
        "basic_scheme": [("Authorization", f"Basic {good}")],
        "token_without_scheme": [("Authorization", good)],
        "valid_then_forged_header": [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {forged}")],
    }[shape]
    assert_refused_and_unbilled(chat(prod_auth_server, None, ATTACK, headers=headers), fake_lago, uid)


def test_scheme_is_case_insensitive_but_the_token_is_still_verified(
    prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts, fake_lago: FakeLago
) -> None:
    good = google_certs.mint(PROJECT_ID, "lowercase-bearer")
    response = chat(prod_auth_server, None, ATTACK, headers={"Authorization": f"bearer {good}"})
    assert response.status_code == 200, "RFC 7235: the auth scheme is case-insensitive"
    assert [e["transaction_id"] for e in fake_lago.events("lowercase-bearer")] == [response.json()["id"]]
    forged = google_certs.mint(PROJECT_ID, "lowercase-forged", key=google_certs.other_key)
    assert_refused_and_unbilled(
        chat(prod_auth_server, None, ATTACK, headers={"Authorization": f"bearer {forged}"}),
        fake_lago,
        "lowercase-forged",
    )


def test_emulator_token_with_bearer_is_401_on_the_production_path(
    prod_auth_server: FunctionServer, user: User, fake_lago: FakeLago
) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = chat(prod_auth_server, None, ATTACK, headers={"Authorization": f"{scheme} {user.token}"})
        assert_refused_and_unbilled(response, fake_lago, user.uid)


def test_huge_authorization_header_is_refused_without_a_5xx(
    prod_auth_server: FunctionServer, google_certs: FakeGoogleCerts, fake_lago: FakeLago
) -> None:
    good = google_certs.mint(PROJECT_ID, "huge-header")
    padded = chat(prod_auth_server, Bearer(f"{good}{'A' * 7000}"), ATTACK)
    assert_refused_and_unbilled(padded, fake_lago, "huge-header")
    # Past gunicorn's 8190-byte field limit the server refuses the request before our code runs.
    huge = chat(prod_auth_server, Bearer("A" * 100_000), ATTACK)
    assert 400 <= huge.status_code < 500
    assert fake_lago.events("huge-header") == []


# --- money attacks: what each bills against what the provider would charge ----------------------
#
# The provider here is the OpenAI-wire stand-in serving gpt-4o-mini; "what the provider would
# charge" is its own usage for the same request read to the end, at OpenAI's published prices
# (input $0.15, output $0.60 per million tokens), plus what the stand-in cannot count but OpenAI
# would (an image: at most 48,169 tokens, OpenAI's largest documented count at detail high).
# Each test asserts billed >= charged and says both figures when it fails.

INPUT_PRICE, OUTPUT_PRICE = 0.15e-6, 0.60e-6  # gpt-4o-mini, dollars per token (OpenAI's pricing page)
IMAGE_HIGH_MAX = 2833 + 5667 * 8  # OpenAI's largest image count at detail high (gpt-4o-mini)


def charged(prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * INPUT_PRICE + completion_tokens * OUTPUT_PRICE


def provider_prompt(server: FunctionServer, user: User, body: dict[str, Any]) -> int:
    """The provider's prompt count for ``body`` read to the end (a JSON call of the same request)."""
    whole = {key: value for key, value in body.items() if key not in ("stream", "stream_options")}
    response = httpx.post(server.url + CHAT, json=whole, headers=user.headers, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["prompt_tokens"])


def cut_stream(server: FunctionServer, user: User, body: dict[str, Any], lines: int = 4) -> tuple[int, str]:
    """Open ``body`` as a stream, read ``lines`` lines, hang up: the status and the call id."""
    with (
        httpx.Client(timeout=REQUEST_TIMEOUT_S) as client,
        client.stream("POST", server.url + CHAT, json=body, headers=user.headers) as response,
    ):
        if response.status_code != 200:
            response.read()
            return response.status_code, ""
        received = response.iter_lines()
        first = [next(received) for _ in range(lines)]
    return 200, json.loads(first[0].removeprefix("data: "))["id"]


def billed(fake_lago: FakeLago, user: User, call_id: str) -> dict[str, Any]:
    """The properties of ``call_id``'s event (the user's second: the first is the JSON call's)."""
    events = [e for e in fake_lago.wait_for_events(user.uid, 2) if e["transaction_id"] == call_id]
    assert len(events) == 1, f"expected one event for {call_id}"
    return dict(events[0]["properties"])


def tools(count: int, words: int) -> list[dict[str, Any]]:
    description = " ".join(f"w{i}" for i in range(words))
    return [
        {"type": "function", "function": {"name": f"tool_{i}", "description": description, "parameters": {}}}
        for i in range(count)
    ]


def test_a_stream_with_100_tools_cut_before_its_end_bills_the_whole_prompt(
    chat_server: FunctionServer, fake_lago: FakeLago, new_user: Callable[[], User]
) -> None:
    # Seen: billed 16 prompt tokens; read to the end the same request was billed ~41,000.
    body = {
        "messages": [{"role": "user", "content": "#words:60 #gap:40"}],
        "tools": tools(100, 400),
        "stream": True,
    }
    user = new_user()
    prompt = provider_prompt(chat_server, user, body)
    status, call_id = cut_stream(chat_server, user, body)
    assert status == 200
    bill = billed(fake_lago, user, call_id)
    provider = charged(prompt, bill["completion_tokens"])
    assert bill["partial"] == "true" and prompt > 40_000
    assert bill["prompt_tokens"] >= prompt, f"billed {bill['prompt_tokens']} prompt tokens, provider counts {prompt}"
    assert bill["response_cost"] >= provider, f"billed ${bill['response_cost']:.6f}, provider charges ${provider:.6f}"


def image_and_text(words: int, **extra: Any) -> dict[str, Any]:
    image = {"type": "image_url", "image_url": {"url": "https://images.example.com/cat.png", "detail": "high"}}
    text = {"type": "text", "text": "#words:60 #gap:40 " + "word " * words}
    return {"messages": [{"role": "user", "content": [text, image]}], "stream": True, **extra}


def test_a_long_text_with_a_high_detail_image_cut_early_bills_text_and_image(
    chat_server: FunctionServer, fake_lago: FakeLago, new_user: Callable[[], User]
) -> None:
    # Seen: ~40k tokens of text plus an image at detail high, closed early, billed 0 prompt tokens.
    body = image_and_text(40_000)
    user = new_user()
    prompt = provider_prompt(chat_server, user, body) + IMAGE_HIGH_MAX  # the stand-in counts no image
    status, call_id = cut_stream(chat_server, user, body)
    assert status == 200
    bill = billed(fake_lago, user, call_id)
    provider = charged(prompt, bill["completion_tokens"])
    assert bill["prompt_tokens"] >= prompt, f"billed {bill['prompt_tokens']} prompt tokens, provider counts {prompt}"
    assert bill["response_cost"] >= provider, f"billed ${bill['response_cost']:.6f}, provider charges ${provider:.6f}"


def test_a_180_kb_prediction_is_billed_as_prompt_when_the_stream_is_cut(
    chat_server: FunctionServer, fake_lago: FakeLago, new_user: Callable[[], User]
) -> None:
    # Seen: a 180 KB prediction.content counted as 8 prompt tokens.
    content = "lorem ipsum dolor sit amet " * 6700  # 180,900 bytes
    body = {
        "messages": [{"role": "user", "content": "#words:60 #gap:40"}],
        "prediction": {"type": "content", "content": content},
        "stream": True,
    }
    user = new_user()
    prompt = provider_prompt(chat_server, user, body) + len(content.split())  # a token a word at least
    status, call_id = cut_stream(chat_server, user, body)
    assert status == 200
    bill = billed(fake_lago, user, call_id)
    provider = charged(prompt, bill["completion_tokens"])
    assert bill["prompt_tokens"] >= prompt, f"billed {bill['prompt_tokens']} prompt tokens, provider counts {prompt}"
    assert bill["response_cost"] >= provider, f"billed ${bill['response_cost']:.6f}, provider charges ${provider:.6f}"


def test_both_completion_limits_are_refused_by_name_and_nothing_is_billed(
    chat_server: FunctionServer, fake_lago: FakeLago, fake_llm: Any, user: User
) -> None:
    # Seen: max_tokens 1 with max_completion_tokens 4096 reserved 1 token while 4096 were sent.
    sent_before = len(fake_llm.requests)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "max_completion_tokens": 4096}
    response = httpx.post(chat_server.url + CHAT, json=body, headers=user.headers, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_completion_tokens"
    assert len(fake_llm.requests) == sent_before and fake_lago.events(user.uid) == []


def test_deep_json_in_tools_is_a_400_naming_the_field(chat_server: FunctionServer, user: User) -> None:
    # Seen: ~1,000 levels inside tools was a 502 (a RecursionError inside LiteLLM).
    deep = '{"type": "object", "properties": {"x": ' * 450 + "{}" + "}}" * 450
    raw = '{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": '
    raw += '{"name": "f", "parameters": ' + deep + "}}]}"
    headers = {**user.headers, "Content-Type": "application/json"}
    response = httpx.post(chat_server.url + CHAT, content=raw, headers=headers, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "tools[0]"


@pytest.fixture(scope="module")
def two_cent_server(function_server: Callable[..., FunctionServer]) -> FunctionServer:
    return function_server(CHAT_BUDGET_CENTS="2", CHAT_MODELS=PRICED_MODELS)


def test_a_two_cent_budget_holds_against_concurrent_image_streams_cut_early(
    chat_server: FunctionServer,
    two_cent_server: FunctionServer,
    fake_lago: FakeLago,
    new_user: Callable[[], User],
) -> None:
    # Seen: with CHAT_BUDGET_CENTS=2, twelve such calls all got 200 while the provider-side
    # prompt cost was 3.7x the budget.
    body = image_and_text(10_000, max_tokens=100)  # a worst case of ~0.9 cents: two fit in 2
    prompt = provider_prompt(chat_server, new_user(), body) + IMAGE_HIGH_MAX  # counted where no budget is spent
    user = new_user()
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda _: cut_stream(two_cent_server, user, body), range(12)))
    accepted = [call_id for status, call_id in outcomes if status == 200]
    assert 1 <= len(accepted) <= 2 and all(status in (200, 402) for status, _ in outcomes), outcomes
    events = fake_lago.wait_for_events(user.uid, len(accepted))
    assert sorted(e["transaction_id"] for e in events) == sorted(accepted)
    spent = sum(float(e["properties"]["response_cost"]) for e in events) * 100
    assert spent <= 2.0, f"billed {spent:.3f} cents against a 2-cent budget"
    for event in events:
        props = event["properties"]
        provider = charged(prompt, props["completion_tokens"])
        assert props["response_cost"] >= provider, f"billed ${props['response_cost']:.6f}, provider ${provider:.6f}"
