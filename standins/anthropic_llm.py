"""Anthropic's Messages API (``POST /v1/messages``): JSON, and its typed server-sent events.

As documented (https://docs.anthropic.com/en/api/messages, /en/docs/build-with-claude/streaming,
/en/docs/build-with-claude/prompt-caching, /en/docs/build-with-claude/extended-thinking):

- Headers: ``x-api-key`` (else 401 ``authentication_error``) and ``anthropic-version`` (else 400).
- Body: ``model``, ``max_tokens`` and ``messages`` required; a field the API does not know is
  400 ``NAME: Extra inputs are not permitted``; ``thinking: {"type": "enabled", "budget_tokens":
  N}`` needs N >= 1024 and N < ``max_tokens``. Errors are ``{"type": "error", "error": {"type",
  "message"}}`` with a ``request-id`` header.
- Usage: ``input_tokens`` (after the last cache breakpoint) beside ``cache_creation_input_tokens``
  (with ``cache_creation``'s 5-minute / 1-hour split) and ``cache_read_input_tokens``;
  ``output_tokens`` counts thinking and text alike (thinking is billed as output).
- A stream: ``message_start`` (the input usage, ``output_tokens`` 1), ``ping``, per block
  ``content_block_start`` / ``content_block_delta`` (``thinking_delta`` then ``signature_delta``;
  ``text_delta``) / ``content_block_stop``, then ``message_delta`` (``stop_reason`` and the
  cumulative usage) and ``message_stop``. Mid-stream errors come as an ``error`` event.

Directives and token counts: ``llm_wire``. ``max_tokens`` bounds thinking plus answer (the answer
is cut first, with ``stop_reason: max_tokens``).

Two liberties, both for the tests' sake: Anthropic caches only prefixes a request marks with
``cache_control`` (which the chat API does not forward), so the cache directives stand for such
markers; and Claude 4 models stream a summary of their thinking while billing all of it, where
this stand-in streams every thinking token it bills.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .http_server import Request, StandIn, StandInServer
from .llm_wire import Call, ChunkedStream, Recorder, answer_words, directives, thinking_words, words

API_KEY = "sk-ant-test-provider-secret-do-not-log"
API_VERSION = "2023-06-01"
DEFAULT_THINKING_WORDS = 24

# The request fields of POST /v1/messages (the API reference's body parameters).
KNOWN_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature"}
    | {"top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers"}
    | {"context_management", "output_config", "output_format", "inference_geo"}
)
_STATUS_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's tokens as this stand-in counts them: system words, message words, 3 per message."""
    messages = body.get("messages") or []
    return words(_text(body.get("system"))) + sum(words(_text(m.get("content"))) + 3 for m in messages)


@dataclass(frozen=True)
class Usage:
    """One call's usage, in the API's terms."""

    input_tokens: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    thinking: int
    text: int

    @property
    def output_tokens(self) -> int:
        return self.thinking + self.text

    def wire(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_5m + self.cache_write_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }


class FakeAnthropic(StandIn):
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.recorder = Recorder()
        self.server = StandInServer([("POST", r"/v1/messages", self._messages)])

    @property
    def calls(self) -> list[Call]:
        return self.recorder.calls

    def calls_with(self, marker: str) -> list[Call]:
        return self.recorder.calls_with(marker)

    @property
    def base_url(self) -> str:
        """``ANTHROPIC_API_BASE``: LiteLLM appends ``/v1/messages``."""
        return self.server.url

    # --- the API -----------------------------------------------------------------------------
    def _messages(self, request: Request) -> None:
        try:
            body = request.json()
        except ValueError:
            return _error(request, 400, "invalid_request_error", "Request body is not valid JSON.")
        call = self.recorder.record(Call(request.path, body if isinstance(body, dict) else {}, False))
        call.stream = isinstance(body, dict) and bool(body.get("stream"))
        if request.headers.get("x-api-key") != self.api_key:
            return _error(request, 401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(request, 400, "invalid_request_error", "anthropic-version: header is required")
        call.caller = "api-key"
        problem = _invalid(body)
        if problem:
            return _error(request, 400, "invalid_request_error", problem)
        messages = body["messages"]
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        said = directives(last_user)
        if "status" in said:
            status = said["status"]
            return _error(request, status, _STATUS_ERRORS.get(status, "api_error"), "stand-in error")
        usage = _usage(body, said)
        if isinstance(usage, str):
            return _error(request, 400, "invalid_request_error", usage)
        thinking, text = thinking_words(usage.thinking), answer_words(usage.text)
        stop_reason = "max_tokens" if usage.output_tokens < _wanted_output(body, said) else "end_turn"
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if call.stream:
            self._stream(request, call, body, usage, thinking, text, stop_reason, message_id, said)
            return None
        content: list[dict[str, Any]] = []
        if thinking:
            content.append({"type": "thinking", "thinking": " ".join(thinking), "signature": _signature()})
        content.append({"type": "text", "text": " ".join(text)})
        call.usage, call.completed = usage.wire(), True
        request.send_json(
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": usage.wire(),
            },
            {"request-id": _request_id()},
        )
        return None

    def _stream(
        self,
        request: Request,
        call: Call,
        body: dict[str, Any],
        usage: Usage,
        thinking: list[str],
        text: list[str],
        stop_reason: str,
        message_id: str,
        said: dict[str, int],
    ) -> None:
        stream = ChunkedStream(request)

        def event(name: str, data: dict[str, Any]) -> None:
            stream.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start_usage = usage.wire(output_tokens=1)
        call.usage = start_usage
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        event("message_start", {"type": "message_start", "message": message})
        event("ping", {"type": "ping"})
        index = 0
        if thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
            for position, word in enumerate(thinking):
                piece = word + (" " if position < len(thinking) - 1 else "")
                delta = {"type": "thinking_delta", "thinking": piece}
                event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": _signature()}
            event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
        for position, word in enumerate(text):
            if said.get("cut") == position:
                stream.cut()
                return
            if said.get("error") == position:
                error = {"type": "overloaded_error", "message": "Overloaded"}
                event("error", {"type": "error", "error": error})
                stream.end()
                return
            piece = word + (" " if position < len(text) - 1 else "")
            delta = {"type": "text_delta", "text": piece}
            event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        event("content_block_stop", {"type": "content_block_stop", "index": index})
        delta_usage = {
            key: value for key, value in usage.wire().items() if key not in ("cache_creation", "service_tier")
        }
        stop = {"stop_reason": stop_reason, "stop_sequence": None}
        event("message_delta", {"type": "message_delta", "delta": stop, "usage": delta_usage})
        event("message_stop", {"type": "message_stop"})
        stream.end()
        call.usage, call.completed = usage.wire(), True


def _invalid(body: Any) -> str | None:
    """Anthropic's 400 message for a body it would refuse, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    for key in body:
        if key not in KNOWN_FIELDS:
            return f"{key}: Extra inputs are not permitted"
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return None


def _thinks(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _wanted_output(body: dict[str, Any], said: dict[str, int]) -> int:
    thinking = said.get("think", DEFAULT_THINKING_WORDS) if _thinks(body) else 0
    return thinking + said.get("words", 8)


def _usage(body: dict[str, Any], said: dict[str, int]) -> Usage | str:
    """The call's usage, or the 400 message when the cache directives exceed the prompt."""
    total = prompt_tokens(body)
    read, write_5m, write_1h = said.get("cache_read", 0), said.get("cache_write", 0), said.get("cache_write_1h", 0)
    if read + write_5m + write_1h > total:
        return f"stand-in: the cache directives ({read + write_5m + write_1h} tokens) exceed the prompt's {total}"
    budget = body["max_tokens"]
    thinking = min(said.get("think", DEFAULT_THINKING_WORDS) if _thinks(body) else 0, budget)
    text = min(said.get("words", 8), budget - thinking)
    return Usage(total - read - write_5m - write_1h, write_5m, write_1h, read, thinking, text)


def _signature() -> str:
    return "EqQBCgIYAhIM" + uuid.uuid4().hex


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _error(request: Request, status: int, kind: str, message: str) -> None:
    request.send_json(
        status, {"type": "error", "error": {"type": kind, "message": message}}, {"request-id": _request_id()}
    )
