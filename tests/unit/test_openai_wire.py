"""Chat Completions bodies as OpenAI publishes them, checked with the spec's own schemas (no servers)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

from litellm.types.utils import (
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)

from shared.chat_wire import chunk_body, completion_body
from tests.support.openai_spec import violations

TOOL_CALL = ChatCompletionMessageToolCall(
    id="call_1", type="function", function=Function(name="get_weather", arguments='{"city":"Paris"}')
)


def response(message: Message, finish: str = "stop") -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-1",
        model="gpt-4o-mini",
        choices=[Choices(index=0, message=message, finish_reason=finish)],
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    )


def test_the_spec_reads_nullable_as_or_null_and_finds_a_missing_required_null() -> None:
    body = completion_body(response(Message(role="assistant", content="hi")))
    assert violations("CreateChatCompletionResponse", body) == []
    del body["choices"][0]["logprobs"]
    assert any("'logprobs' is a required property" in v for v in violations("CreateChatCompletionResponse", body))


def test_a_text_answer_keeps_the_required_nulls() -> None:
    body = completion_body(response(Message(role="assistant", content="hi")))
    choice = body["choices"][0]
    assert choice["logprobs"] is None and choice["message"]["refusal"] is None


def test_a_tool_call_answer_has_null_content() -> None:
    body = completion_body(response(Message(role="assistant", content=None, tool_calls=[TOOL_CALL]), "tool_calls"))
    assert body["choices"][0]["message"]["content"] is None
    assert violations("CreateChatCompletionResponse", body) == []


def test_every_chunk_before_the_last_has_a_null_finish_reason() -> None:
    chunk = ModelResponseStream(
        id="c", model="gpt-4o-mini", choices=[StreamingChoices(index=0, delta=Delta(content="hi"))]
    )
    body = chunk_body(chunk)
    assert body["choices"][0]["finish_reason"] is None
    assert violations("CreateChatCompletionStreamResponse", body) == []
