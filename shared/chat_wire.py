"""Chat Completions bodies in OpenAI's published shape (openai-openapi 2.3.0).

LiteLLM's objects are dumped without their unset fields (the spec allows few of them as null),
then the fields the spec *requires* are given back as null where LiteLLM left them out: a
choice's ``logprobs`` (and, inside it, ``content`` and ``refusal``), a message's ``content`` (null
on a tool call) and ``refusal``, and a chunk's ``finish_reason`` (null until the last chunk).
Typed clients in stricter languages decode these fields as required.
"""

from __future__ import annotations

from typing import Any


def completion_body(response: Any) -> dict[str, Any]:
    """A ``chat.completion`` body from LiteLLM's ``ModelResponse``."""
    body: dict[str, Any] = response.model_dump(exclude_none=True)
    for choice in body.get("choices", []):
        choice.pop("provider_specific_fields", None)
        _logprobs(choice)
        message = choice.setdefault("message", {})
        message.pop("provider_specific_fields", None)
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        message.setdefault("refusal", None)
    return body


def chunk_body(chunk: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` body from LiteLLM's ``ModelResponseStream``."""
    body: dict[str, Any] = chunk.model_dump(exclude_none=True)
    for choice in body.get("choices", []):
        choice.pop("provider_specific_fields", None)
        choice.setdefault("delta", {}).pop("provider_specific_fields", None)
        choice.setdefault("finish_reason", None)
        if isinstance(choice.get("logprobs"), dict):
            _logprobs(choice)
    return body


def _logprobs(choice: dict[str, Any]) -> None:
    logprobs = choice.setdefault("logprobs", None)
    if isinstance(logprobs, dict):
        logprobs.setdefault("content", None)
        logprobs.setdefault("refusal", None)
