"""The SSE writer (``chat._sse`` and ``_Finishes``, no server), driven by a fake stream of LiteLLM's
own chunk types: the lines it writes, and when and what it bills. Streams through the running
server, cut, abandoned and frozen: tests/test_chat_api.py, test_billing.py, test_faults.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices, Usage

from shared.billing_event import CallContext
from shared.chat import _Finishes, _sse
from shared.chat_request import ChatRequest
from shared.pricing.usage import CallUsage, priced, read_usage

MODEL = "openai/gpt-4o-mini"
CALL = CallContext("chatcmpl-ours", "2026-01-01T00:00:00Z", "uid-1", "uid-1", MODEL)


def request(*, include_usage: bool = True, n: int = 1) -> ChatRequest:
    return ChatRequest(MODEL, [{"role": "user", "content": "hi"}], True, include_usage, {"max_tokens": 50}, n=n)


def words(*texts: str, index: int = 0, finish: str | None = "stop") -> list[ModelResponseStream]:
    """One chunk per text, as the provider streams them; the last carries ``finish``."""
    return [
        ModelResponseStream(
            id="chatcmpl-provider",
            model="gpt-4o-mini",
            choices=[
                StreamingChoices(
                    index=index, delta=Delta(content=text), finish_reason=finish if i == len(texts) - 1 else None
                )
            ],
        )
        for i, text in enumerate(texts)
    ]


def usage_chunk(prompt: int = 3, completion: int = 2) -> ModelResponseStream:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return ModelResponseStream(id="chatcmpl-provider", model="gpt-4o-mini", choices=[], usage=usage)


class ProviderStream:
    """The chunks, then (optionally) a provider failure midway; records that it was closed."""

    def __init__(self, chunks: list[ModelResponseStream], fail: BaseException | None = None) -> None:
        self._chunks, self._fail = chunks, fail
        self.closed = False

    def __iter__(self) -> Iterator[ModelResponseStream]:
        yield from self._chunks
        if self._fail is not None:
            raise self._fail

    def close(self) -> None:
        self.closed = True


class Billing:
    """The request's billing (``RequestBilling``) as the writer uses it: what it was told, in
    order; a usage chunk is priced as the real one prices it."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    def succeeded(self, call: CallContext, response: Any) -> CallUsage:
        usage = priced(call.model, read_usage(response.usage, model=call.model))
        self.told.append(("succeeded", usage))
        return usage

    def cut_short(self, call: CallContext, usage: CallUsage) -> None:
        self.told.append(("cut_short", usage))

    def failed(self, call: CallContext) -> None:
        self.told.append(("failed", None))

    def flush(self) -> None:
        self.told.append(("flush", None))


def write(stream: ProviderStream, billing: Billing, chat_request: ChatRequest | None = None) -> Iterator[str]:
    return _sse(stream, chat_request or request(), CALL, billing)  # type: ignore[arg-type]


def data(line: str) -> Any:
    assert line.startswith("data: ") and line.endswith("\n\n"), line
    payload = line.removeprefix("data: ").strip()
    return payload if payload == "[DONE]" else json.loads(payload)


def test_chunks_go_out_as_ours_then_the_usage_chunk_then_done_billed_before_done() -> None:
    billing = Billing()
    lines = write(ProviderStream([*words("a ", "b"), usage_chunk()]), billing)
    chunks = [data(next(lines)) for _ in range(2)]
    assert billing.told == [], "nothing is billed while the answer streams"
    chunks.append(data(next(lines)))
    assert [kind for kind, _ in billing.told] == ["succeeded"], "the usage chunk is priced, not yet delivered"
    assert [c["id"] for c in chunks] == ["chatcmpl-ours"] * 3, "our call id, Lago's transaction id"
    assert {c["model"] for c in chunks} == {MODEL}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:2]] == ["a ", "b"]
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["completion_tokens"] == 2
    assert chunks[2]["usage"]["cost"] > 0, "the usage chunk says what the answer cost"
    done = next(lines)
    assert [kind for kind, _ in billing.told] == ["succeeded", "flush"], "billed before [DONE] is sent"
    assert done == "data: [DONE]\n\n"
    usage = billing.told[0][1]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.partial) == (3, 2, False)
    assert list(lines) == []


def test_without_include_usage_the_usage_chunk_is_billed_but_not_sent() -> None:
    billing = Billing()
    out = [
        data(line)
        for line in write(ProviderStream([*words("a"), usage_chunk()]), billing, request(include_usage=False))
    ]
    assert out[-1] == "[DONE]" and all(c["choices"] for c in out[:-1])
    assert billing.told[0][0] == "succeeded" and billing.told[0][1].completion_tokens == 2


def test_a_provider_failure_midway_ends_with_one_error_line_and_bills_what_was_sent() -> None:
    billing = Billing()
    failure = litellm.exceptions.InternalServerError("boom", llm_provider="openai", model="gpt-4o-mini")
    out = list(write(ProviderStream(words("one ", "two ", finish=None), fail=failure), billing))
    assert [data(line)["choices"][0]["delta"]["content"] for line in out[:2]] == ["one ", "two "]
    assert data(out[-1]) == {
        "error": {
            "message": "The model provider returned an error.",
            "type": "api_error",
            "code": "upstream_error",
            "param": None,
        }
    }
    assert "[DONE]" not in out[-1]
    [(kind, usage), flush] = billing.told
    assert kind == "cut_short" and usage.partial and usage.completion_tokens > 0
    assert flush == ("flush", None)


def test_a_failure_before_any_chunk_bills_nothing() -> None:
    billing = Billing()
    failure = litellm.exceptions.APIConnectionError("reset", llm_provider="openai", model="gpt-4o-mini")
    out = list(write(ProviderStream([], fail=failure), billing))
    assert len(out) == 1 and data(out[0])["error"]["code"] == "upstream_error"
    assert billing.told == [("failed", None), ("flush", None)]


def test_a_client_that_goes_away_leaves_what_was_sent_billed_once_and_the_provider_stream_closed() -> None:
    billing = Billing()
    stream = ProviderStream([*words("a ", "b ", "c"), usage_chunk()])
    lines = write(stream, billing)
    next(lines)
    next(lines)
    lines.close()  # the client disconnected after two chunks
    [(kind, usage), flush] = billing.told
    assert kind == "cut_short" and usage.partial and flush == ("flush", None)
    assert stream.closed, "the provider stops generating what no one will read"


# --- n > 1: LiteLLM passes on only the first choice's finish_reason ---------------------------


def test_choices_left_without_a_finish_reason_get_one_before_the_usage_chunk() -> None:
    billing = Billing()
    chunks = [*words("x", index=0), *words("y", index=1, finish=None), usage_chunk()]
    out = [data(line) for line in write(ProviderStream(chunks), billing, request(n=2))]
    finishes = [(c["choices"][0]["index"], c["choices"][0].get("finish_reason")) for c in out[:-2] if c["choices"]]
    assert finishes == [(0, "stop"), (1, None), (1, "stop")]
    assert out[-2]["usage"] and out[-1] == "[DONE]"


@pytest.mark.parametrize(
    ("n", "seen", "missing"),
    [
        (2, [(0, "stop"), (1, "stop")], []),  # both finished: nothing to add
        (3, [(0, "length")], [1, 2]),  # the others end the same way
        (2, [], []),  # no choice finished (a cut stream): nothing is made up
    ],
)
def test_finishes_adds_the_reason_only_for_choices_that_lack_one(
    n: int, seen: list[tuple[int, str]], missing: list[int]
) -> None:
    finishes = _Finishes(n)
    for index, reason in seen:
        finishes.saw(words("w", index=index, finish=reason)[0])
    added = [data(line) for line in finishes.missing(CALL, MODEL)]
    assert [c["choices"][0]["index"] for c in added] == missing
    assert all(c["id"] == "chatcmpl-ours" and c["choices"][0]["delta"] == {} for c in added)
    assert list(finishes.missing(CALL, MODEL)) == [], "once"
