"""Each provider through its own wire, billed at its published price, every time (issue 24).

Anthropic's Messages API, Gemini on AI Studio (an API key) and Gemini on Vertex AI (an OAuth
token google-auth obtains from a service-account credential: no key) are stand-ins speaking
the real protocols (``tests/standins/anthropic_llm.py``, ``gemini_llm.py``, ``google_oauth.py``),
each reporting cache reads, cache writes (Anthropic, with the 5-minute / 1-hour split) and
thinking tokens. What each call is billed (the Lago event's ``response_cost``, the answer's
``usage.cost``) is compared with a price computed here from the usage the provider reported and
the providers' published per-token prices (``tests/data/published_prices.toml``), not from
LiteLLM's cost map: LiteLLM's own cost code has had provider-specific errors in these shapes.

Each stream is repeated ``REPETITIONS`` (100) times, the same bytes every time: LiteLLM runs its
success callback on another thread after a stream ends, and a price that depends on which
thread finishes first shows up only some of the time. A stream that fails midway (the connection
closes mid-body, or Anthropic's ``overloaded_error`` event) is billed for the prompt the provider
reported before the failure, at its published rates, and for at least the output streamed (at
most the limit the provider was given), the same in each of ``FAILED_REPETITIONS`` runs.

Before issue 24's pricing lands, the JSON prices pass and the streamed and partial ones fail (the
handler's fallback prices prompt and completion tokens at the plain input and output rates).
"""

from __future__ import annotations

import collections
import json
import math
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.service_account
import httpx
import pytest
from httpx_sse import connect_sse

from standins.anthropic_llm import FakeAnthropic
from standins.gemini_llm import FakeGemini
from standins.google_oauth import FakeGoogleOAuth
from standins.lago import FakeLago
from standins.llm_wire import Call
from standins.processes import FunctionServer
from tests.conftest import (
    ANTHROPIC_MODEL,
    GEMINI_MODEL,
    LONG_CONTEXT_MODEL,
    PROJECT_ID,
    VERTEX_LOCATION,
    VERTEX_MODEL,
    User,
)
from tests.support.api import CHAT, ask, chat

PRICES: dict[str, dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent / "data" / "published_prices.toml").read_text()
)
REPETITIONS = 100  # of each stream that ends well
# Of each stream that fails midway: no callback races its bill (LiteLLM calls none for a failed
# stream), so fewer runs show that its price does not vary.
FAILED_REPETITIONS = 20
PROMPT_WORDS = 3000  # one token each to the stand-ins; the cache directives take their parts of it


@dataclass(frozen=True)
class Provider:
    """One provider's model and the usage its calls report (as directives to its stand-in)."""

    name: str
    model: str
    usage: str  # the directives; every call also thinks (reasoning_effort) for THINKING words
    cache_read: int
    cache_write: int  # Anthropic's writes, 5-minute and 1-hour together (Gemini: none)


THINKING, ANSWER = 40, 12
PROVIDERS = {
    "anthropic": Provider(
        "anthropic",
        ANTHROPIC_MODEL,
        f"#cache_read:2000 #cache_write:500 #cache_write_1h:300 #think:{THINKING} #words:{ANSWER}",
        cache_read=2000,
        cache_write=800,
    ),
    "gemini": Provider("gemini", GEMINI_MODEL, f"#cached:2000 #think:{THINKING} #words:{ANSWER}", 2000, 0),
    "vertex_ai": Provider("vertex_ai", VERTEX_MODEL, f"#cached:2000 #think:{THINKING} #words:{ANSWER}", 2000, 0),
}
CUT_AFTER = 5  # answer words a cut stream delivers before the provider fails


# --- the published price of a reported usage ---------------------------------------------------


def published_price(model: str, usage: dict[str, Any]) -> float:
    """US dollars for one call's usage as its provider reported it on the wire, at list price."""
    rate = PRICES[model]
    if model.startswith("anthropic/"):
        writes = usage.get("cache_creation") or {}
        write_1h = writes.get("ephemeral_1h_input_tokens", 0)
        write_5m = writes.get("ephemeral_5m_input_tokens", usage["cache_creation_input_tokens"] - write_1h)
        per_million = (
            usage["input_tokens"] * rate["input"]
            + write_5m * rate["cache_write_5m"]
            + write_1h * rate["cache_write_1h"]
            + usage["cache_read_input_tokens"] * rate["cache_read"]
            + usage["output_tokens"] * rate["output"]  # thinking included
        )
    else:  # Gemini, AI Studio or Vertex AI: cached tokens are part of the prompt count
        if usage["promptTokenCount"] > rate.get("long_context_above", math.inf):
            rate = {name: rate[f"{name}_long_context"] for name in ("input", "cache_read", "output")}
        cached = usage.get("cachedContentTokenCount", 0)
        output = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
        per_million = (usage["promptTokenCount"] - cached) * rate["input"] + cached * rate["cache_read"]
        per_million += output * rate["output"]
    return per_million / 1e6


def with_output(model: str, usage: dict[str, Any], *, thinking: int, text: int) -> dict[str, Any]:
    """The same usage with that much output (what a cut stream had produced, or would have)."""
    if model.startswith("anthropic/"):
        return {**usage, "output_tokens": thinking + text}
    return {**usage, "thoughtsTokenCount": thinking, "candidatesTokenCount": text}


def breakdown(model: str, usage: dict[str, Any]) -> dict[str, int]:
    """The Lago event's token properties for a reported usage (LiteLLM's conventions: the
    prompt includes cached and cache-written tokens, the completion includes thinking)."""
    if model.startswith("anthropic/"):
        written, read = usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]
        return {
            "prompt_tokens": usage["input_tokens"] + written + read,
            "completion_tokens": usage["output_tokens"],
            "cached_tokens": read,
            "cache_creation_tokens": written,
            # Anthropic reports no thinking count: LiteLLM counts the thinking text's tokens (one
            # per word of the stand-in's thinking, by its counter).
            "reasoning_tokens": THINKING,
        }
    thoughts = usage.get("thoughtsTokenCount", 0)
    return {
        "prompt_tokens": usage["promptTokenCount"],
        "completion_tokens": usage["candidatesTokenCount"] + thoughts,
        "cached_tokens": usage.get("cachedContentTokenCount", 0),
        "cache_creation_tokens": 0,
        "reasoning_tokens": thoughts,
    }


def same_money(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_published_prices_are_those_of_the_pages_cited() -> None:
    # The table is the tests' oracle: a typo in it would make every comparison meaningless.
    assert PRICES[ANTHROPIC_MODEL] == {
        "source": "https://docs.anthropic.com/en/docs/about-claude/pricing",
        "input": 3.0,
        "cache_write_5m": 3.75,
        "cache_write_1h": 6.0,
        "cache_read": 0.3,
        "output": 15.0,
    }
    for model in (GEMINI_MODEL, VERTEX_MODEL):
        assert {k: v for k, v in PRICES[model].items() if k != "source"} == {
            "input": 0.3,
            "cache_read": 0.03,
            "output": 2.5,
        }
    # Hand-computed: 208 input, 500 + 300 written, 2000 read, 52 out.
    usage = {
        "input_tokens": 208,
        "cache_creation_input_tokens": 800,
        "cache_read_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 300},
        "output_tokens": 52,
    }
    assert published_price(ANTHROPIC_MODEL, usage) == pytest.approx(
        (208 * 3 + 500 * 3.75 + 300 * 6 + 2000 * 0.3 + 52 * 15) / 1e6
    )
    usage = {"promptTokenCount": 3006, "cachedContentTokenCount": 2000, "candidatesTokenCount": 12}
    assert published_price(GEMINI_MODEL, {**usage, "thoughtsTokenCount": 40}) == pytest.approx(
        (1006 * 0.3 + 2000 * 0.03 + 52 * 2.5) / 1e6
    )
    assert published_price(LONG_CONTEXT_MODEL, {**usage, "thoughtsTokenCount": 40}) == pytest.approx(
        (1006 * 1.25 + 2000 * 0.125 + 52 * 10) / 1e6
    )
    usage = {"promptTokenCount": 200_001, "cachedContentTokenCount": 1, "candidatesTokenCount": 2}
    assert published_price(LONG_CONTEXT_MODEL, usage) == pytest.approx((200_000 * 2.5 + 1 * 0.25 + 2 * 15) / 1e6)


# --- calling the function -----------------------------------------------------------------------


def new_marker() -> str:
    """A word that finds a test's calls at the stand-in (a test repeats one prompt: the same
    bytes every time, so nothing but timing differs between its repetitions)."""
    return f"run-{uuid.uuid4().hex}"


def prompt(provider: Provider, marker: str, *extra: str, words: int = PROMPT_WORDS) -> str:
    """A prompt for ``provider``'s usage: ``words`` words, the directives, the marker."""
    return " ".join(["hello"] * words + [provider.usage, *extra, marker])


def body_for(provider: Provider, text: str, **extra: Any) -> dict[str, Any]:
    return ask(text, model=provider.model, reasoning_effort="low", **extra)


@dataclass
class Streamed:
    call_id: str
    usage: dict[str, Any] | None  # the usage chunk's
    error: dict[str, Any] | None  # the error event's
    done: bool


def stream(client: httpx.Client, server: FunctionServer, user: User, body: dict[str, Any]) -> Streamed:
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    call_id, usage, error, done = "", None, None, False
    with connect_sse(client, "POST", server.url + CHAT, json=body, headers=user.headers) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if sse.data == "[DONE]":
                done = True
                continue
            data = json.loads(sse.data)
            if "error" in data:
                error = data["error"]
                continue
            call_id = call_id or data["id"]
            usage = data.get("usage") or usage
    return Streamed(call_id, usage, error, done)


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]


@pytest.fixture
def stand_in(provider: Provider, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini) -> FakeAnthropic | FakeGemini:
    return fake_anthropic if provider.name == "anthropic" else fake_gemini


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def the_calls(stand_in: FakeAnthropic | FakeGemini, marker: str, count: int = 1) -> list[Call]:
    """The calls that carried ``marker``, in the order they arrived (a test calls one at a time)."""
    calls = stand_in.calls_with(marker)
    assert len(calls) == count, f"{len(calls)} provider calls carry {marker}, not {count}"
    return calls


def the_call(stand_in: FakeAnthropic | FakeGemini, marker: str) -> Call:
    return the_calls(stand_in, marker)[0]


def events_by_id(fake_lago: FakeLago, payer: str) -> dict[str, dict[str, Any]]:
    return {event["transaction_id"]: event for event in fake_lago.events(payer)}


# --- the stand-ins, as LiteLLM reads them -----------------------------------------------------------


@pytest.fixture
def litellm_env(monkeypatch: pytest.MonkeyPatch, provider_env: dict[str, str]) -> Any:
    """LiteLLM in this process, pointed at the stand-ins as the function server is."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    import litellm

    return litellm


def test_litellm_reads_each_stand_ins_usage_as_sent(
    provider: Provider, stand_in: FakeAnthropic | FakeGemini, litellm_env: Any
) -> None:
    """The stand-ins' wire is what LiteLLM parses: its usage object carries what they reported,
    JSON and streamed, and its cost of that usage is the published price (so a wrong bill in the
    tests below is the product's pricing, not a stand-in LiteLLM misreads)."""
    litellm = litellm_env
    for streamed in (False, True):
        marker = new_marker()
        text = prompt(provider, marker)
        messages = [{"role": "user", "content": text}]
        options: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if streamed else {}
        answer = litellm.completion(model=provider.model, messages=messages, reasoning_effort="low", **options)
        if streamed:
            chunks = list(answer)
            usage, cost = chunks[-1].usage, chunks[-1].usage.cost
        else:
            usage, cost = answer.usage, answer._hidden_params["response_cost"]
        call = the_call(stand_in, marker)
        assert call.completed and call.stream == streamed
        expected = breakdown(provider.model, call.usage)
        assert expected["cached_tokens"] == provider.cache_read
        assert expected["cache_creation_tokens"] == provider.cache_write
        assert expected["completion_tokens"] == THINKING + ANSWER
        assert {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.prompt_tokens_details.cached_tokens,
            "cache_creation_tokens": getattr(usage.prompt_tokens_details, "cache_creation_tokens", None) or 0,
            "reasoning_tokens": usage.completion_tokens_details.reasoning_tokens,
        } == expected
        assert same_money(cost, published_price(provider.model, call.usage))


def test_vertex_ai_is_called_with_the_service_accounts_own_token(
    provider_server: FunctionServer,
    provider_env: dict[str, str],
    fake_gemini: FakeGemini,
    google_oauth: FakeGoogleOAuth,
    user: User,
) -> None:
    marker = new_marker()
    response = chat(provider_server, user, body_for(PROVIDERS["vertex_ai"], prompt(PROVIDERS["vertex_ai"], marker)))
    assert response.status_code == 200, response.text
    call = the_call(fake_gemini, marker)
    credential = json.loads(Path(provider_env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    assert call.caller == credential["client_email"]  # a token google_oauth issued to that account
    assert call.path == (
        f"/v1/projects/{PROJECT_ID}/locations/{VERTEX_LOCATION}/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert google_oauth.grants >= 1


def test_no_provider_secret_reaches_the_logs_or_the_answers(
    provider_server: FunctionServer, provider_env: dict[str, str], user: User
) -> None:
    texts = []
    for provider in PROVIDERS.values():
        for extra in ("", "#status:500", "#status:401"):  # answered, and the provider's failures
            response = chat(provider_server, user, body_for(provider, prompt(provider, new_marker(), extra)))
            texts.append(response.text)
    credential = json.loads(Path(provider_env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    secrets = [provider_env["ANTHROPIC_API_KEY"], provider_env["GEMINI_API_KEY"], "ya29.test-"]
    secrets += [credential["private_key_id"], credential["private_key"].splitlines()[1]]
    logs = provider_server.logs()
    assert "llm_call_failed" in logs
    for secret in secrets:
        assert secret not in logs and not any(secret in text for text in texts)


def test_stand_ins_refuse_what_the_providers_refuse(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini, google_oauth: FakeGoogleOAuth, client: httpx.Client
) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    url = fake_anthropic.base_url + "/v1/messages"
    version = {"anthropic-version": "2023-06-01"}
    assert client.post(url, json=body, headers={**version, "x-api-key": "wrong"}).status_code == 401
    assert client.post(url, json=body, headers={"x-api-key": fake_anthropic.api_key}).status_code == 400
    refused = client.post(
        url, json={**body, "temperature_x": 1}, headers={**version, "x-api-key": fake_anthropic.api_key}
    )
    assert refused.json()["error"] == {
        "type": "invalid_request_error",
        "message": "temperature_x: Extra inputs are not permitted",
    }
    thinking = {**body, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert client.post(url, json=thinking, headers={**version, "x-api-key": fake_anthropic.api_key}).status_code == 400

    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    studio = fake_gemini.studio_base + "/models/gemini-2.5-flash:generateContent"
    assert client.post(studio, json=gemini).json()["error"]["status"] == "PERMISSION_DENIED"
    assert client.post(studio, json=gemini, headers={"x-goog-api-key": "wrong"}).status_code == 400
    assert client.post(studio, json=gemini, params={"key": fake_gemini.api_key}).status_code == 200

    vertex = f"{fake_gemini.url}/v1/projects/{PROJECT_ID}/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert client.post(vertex, json=gemini, headers={"x-goog-api-key": fake_gemini.api_key}).status_code == 401
    assert client.post(vertex, json=gemini, headers={"Authorization": "Bearer ya29.made-up"}).status_code == 401
    # A token for another project's service account: no roles/aiplatform.user here.
    other = google.oauth2.service_account.Credentials.from_service_account_info(
        google_oauth.service_account("someone-elses-project"), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    other.refresh(google.auth.transport.requests.Request())
    denied = client.post(vertex, json=gemini, headers={"Authorization": f"Bearer {other.token}"})
    assert (denied.status_code, denied.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    # An assertion signed with a key Google does not hold for that account is refused.
    forged_info = {**google_oauth.service_account(PROJECT_ID, "forger"), "private_key_id": "not-its-key-id"}
    forged = google.oauth2.service_account.Credentials.from_service_account_info(
        forged_info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        forged.refresh(google.auth.transport.requests.Request())


# --- billed at the published price ------------------------------------------------------------------


def test_json_answer_is_billed_at_the_published_price(
    provider: Provider,
    stand_in: FakeAnthropic | FakeGemini,
    provider_server: FunctionServer,
    fake_lago: FakeLago,
    user: User,
) -> None:
    marker = new_marker()
    response = chat(provider_server, user, body_for(provider, prompt(provider, marker)))
    assert response.status_code == 200, response.text
    answer = response.json()
    call = the_call(stand_in, marker)
    price = published_price(provider.model, call.usage)
    event = events_by_id(fake_lago, user.uid)[answer["id"]]
    assert same_money(event["properties"].get("response_cost"), price), (event["properties"], price)
    assert same_money(answer["usage"].get("cost"), price), (answer["usage"], price)
    expected = breakdown(provider.model, call.usage)
    assert answer["usage"]["prompt_tokens"] == expected["prompt_tokens"]
    assert answer["usage"]["completion_tokens"] == expected["completion_tokens"]
    assert event["properties"]["prompt_tokens"] == expected["prompt_tokens"]
    assert event["properties"]["completion_tokens"] == expected["completion_tokens"]


def test_lago_event_carries_the_usage_breakdown(
    provider: Provider,
    stand_in: FakeAnthropic | FakeGemini,
    provider_server: FunctionServer,
    fake_lago: FakeLago,
    user: User,
    client: httpx.Client,
) -> None:
    """``cached_tokens``, ``cache_creation_tokens`` and ``reasoning_tokens`` beside the prompt and
    completion counts, JSON and streamed: what an operator needs to price the call in Lago.
    A count the provider did not report may be absent or 0."""
    marker, streamed_marker = new_marker(), new_marker()
    answer = chat(provider_server, user, body_for(provider, prompt(provider, marker))).json()
    streamed = stream(client, provider_server, user, body_for(provider, prompt(provider, streamed_marker)))
    events = events_by_id(fake_lago, user.uid)
    for call_id, mark in ((answer["id"], marker), (streamed.call_id, streamed_marker)):
        expected = breakdown(provider.model, the_call(stand_in, mark).usage)
        properties = events[call_id]["properties"]
        carried = {name: properties.get(name, 0 if count == 0 else None) for name, count in expected.items()}
        assert carried == expected, f"the event of {call_id}: {properties}"


def test_streams_are_billed_at_the_published_price_every_time(
    provider: Provider,
    stand_in: FakeAnthropic | FakeGemini,
    provider_server: FunctionServer,
    fake_lago: FakeLago,
    user: User,
    client: httpx.Client,
) -> None:
    marker = new_marker()
    body = body_for(provider, prompt(provider, marker))
    answers = []
    for _ in range(REPETITIONS):
        streamed = stream(client, provider_server, user, body)
        assert streamed.done and streamed.error is None and streamed.usage is not None
        answers.append(streamed)
    runs = list(zip(answers, the_calls(stand_in, marker, REPETITIONS), strict=True))
    events = events_by_id(fake_lago, user.uid)
    assert len(events) == REPETITIONS
    billed, shown = collections.Counter[str](), collections.Counter[str]()
    wrong = 0
    for streamed, call in runs:
        price = published_price(provider.model, call.usage)
        event_cost = events[streamed.call_id]["properties"].get("response_cost")
        usage_cost = streamed.usage.get("cost") if streamed.usage else None
        billed[f"{event_cost}"] += 1
        shown[f"{usage_cost}"] += 1
        wrong += not (same_money(event_cost, price) and same_money(usage_cost, price))
    assert wrong == 0, (
        f"{wrong} of {REPETITIONS} streams billed other than the published {price!r}: "
        f"Lago events {dict(billed)}, usage.cost shown {dict(shown)}"
    )


@pytest.mark.parametrize(
    ("provider_name", "failure"),
    [("anthropic", "cut"), ("anthropic", "error"), ("gemini", "cut"), ("vertex_ai", "cut")],
)
def test_stream_failing_midway_bills_the_prompt_the_provider_reported(
    provider_name: str,
    failure: str,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    provider_server: FunctionServer,
    fake_lago: FakeLago,
    user: User,
    client: httpx.Client,
) -> None:
    """Before failing, the provider reported the prompt's usage (Anthropic in ``message_start``,
    Gemini in every chunk's ``usageMetadata``; LiteLLM's stream keeps those chunks). The partial
    bill carries that prompt as reported, cache reads and writes included, and prices it at the
    published rates. The output is not reported before the end, and thinking the stream does not
    show in full may exceed what it showed: it counts at least what was streamed and at most the
    limit the provider was given. The same bill in every repetition."""
    provider = PROVIDERS[provider_name]
    stand_in = fake_anthropic if provider_name == "anthropic" else fake_gemini
    marker = new_marker()
    body = body_for(provider, prompt(provider, marker, f"#{failure}:{CUT_AFTER}"))
    answers = []
    for _ in range(FAILED_REPETITIONS):
        streamed = stream(client, provider_server, user, body)
        assert streamed.error is not None and streamed.usage is None, streamed
        answers.append(streamed)
    runs = list(zip(answers, the_calls(stand_in, marker, FAILED_REPETITIONS), strict=True))
    events = events_by_id(fake_lago, user.uid)
    assert len(events) == FAILED_REPETITIONS
    prompt_side = ("prompt_tokens", "cached_tokens", "cache_creation_tokens")
    bills, wrong = collections.Counter[str](), []
    for streamed, call in runs:
        assert not call.completed
        properties = events[streamed.call_id]["properties"]
        assert properties.get("partial") == "true"
        reported = breakdown(provider.model, call.usage)
        carried = {name: properties.get(name, 0 if reported[name] == 0 else None) for name in prompt_side}
        completion, cost = properties.get("completion_tokens"), properties.get("response_cost")
        bills[f"{carried} completion_tokens={completion} response_cost={cost}"] += 1
        seen, limit = THINKING + CUT_AFTER, output_limit(call)
        ok = carried == {name: reported[name] for name in prompt_side} and isinstance(completion, int)
        ok = ok and seen <= completion <= limit
        priced = published_price(provider.model, with_output(provider.model, call.usage, thinking=0, text=completion))
        if not (ok and same_money(cost, priced)):
            expected = {name: reported[name] for name in prompt_side}
            wrong.append(f"expected {expected}, completion_tokens in [{seen}, {limit}], priced as {priced!r}")
    assert not wrong and len(bills) == 1, (
        f"{len(wrong)} of {FAILED_REPETITIONS} partial bills off ({wrong[:1]}, each priced at the published"
        f" rates): billed {dict(bills)}"
    )


def output_limit(call: Call) -> int:
    """The output limit that reached the provider (its own field's name)."""
    if "max_tokens" in call.body:
        return int(call.body["max_tokens"])
    config = call.body.get("generationConfig") or call.body.get("generation_config") or {}
    limit = config.get("maxOutputTokens", config.get("max_output_tokens"))
    assert isinstance(limit, int), f"no output limit reached the provider: {config}"
    return limit


LONG_PROMPT_WORDS = 205_000  # past Gemini 2.5 Pro's 200K-token tier (about 1.2 MB of request)
LONG_CONTEXT_STREAMS = 5


def test_prompt_past_the_long_context_tier_is_billed_at_its_rates(
    fake_gemini: FakeGemini, provider_server: FunctionServer, fake_lago: FakeLago, user: User, client: httpx.Client
) -> None:
    """Gemini 2.5 Pro bills every token of a prompt over 200K tokens at its long-context rates."""
    provider = Provider("gemini", LONG_CONTEXT_MODEL, f"#cached:100000 #think:{THINKING} #words:{ANSWER}", 100_000, 0)
    marker = new_marker()
    body = body_for(provider, prompt(provider, marker, words=LONG_PROMPT_WORDS))
    response = chat(provider_server, user, body, timeout=60)
    assert response.status_code == 200, response.text
    answers = [(response.json()["id"], response.json()["usage"])]
    for _ in range(LONG_CONTEXT_STREAMS):
        streamed = stream(client, provider_server, user, body)
        answers.append((streamed.call_id, streamed.usage or {}))
    calls = the_calls(fake_gemini, marker, 1 + LONG_CONTEXT_STREAMS)
    assert all(call.usage["promptTokenCount"] > PRICES[LONG_CONTEXT_MODEL]["long_context_above"] for call in calls)
    events = events_by_id(fake_lago, user.uid)
    billed = [(events[call_id]["properties"].get("response_cost"), usage.get("cost")) for call_id, usage in answers]
    prices = [published_price(LONG_CONTEXT_MODEL, call.usage) for call in calls]
    wrong = sum(
        not (same_money(event_cost, price) and same_money(shown, price))
        for (event_cost, shown), price in zip(billed, prices, strict=True)
    )
    assert wrong == 0, (
        f"{wrong} of {len(billed)} calls (JSON first) billed (Lago, usage.cost) {billed}, published {prices}"
    )
