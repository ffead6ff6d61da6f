"""An LLM provider that speaks the OpenAI Chat Completions wire protocol (JSON and SSE).

Behaviour is chosen by directives in the last user message, so concurrent tests don't share
state: ``#status:503`` answers that error, ``#sleep:2`` waits before answering, ``#words:40``
sets the answer's length, ``#gap:50`` waits 50 ms between streamed chunks, ``#cut:3`` drops
the connection after 3 streamed chunks, ``#hold`` streams one chunk then waits until released,
``#toolcall`` answers (streamed) with a call of the tool ``get_weather`` instead of text.
Usage counts are deterministic: one prompt token per word of all messages plus 3 per message.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from .http_server import Request, StandIn, StandInServer

_DIRECTIVE = re.compile(r"#(status|sleep|words|gap|cut|hold|toolcall)(?::([\d.]+))?")
TOOL_CALL = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
_ERRORS = {
    400: ("invalid_request_error", "bad request"),
    401: ("invalid_request_error", "Incorrect API key provided"),
    404: ("invalid_request_error", "The model does not exist"),
    429: ("rate_limit_error", "Rate limit reached"),
    500: ("server_error", "The server had an error"),
    503: ("server_error", "The engine is currently overloaded"),
}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text(m.get("content")).split()) + 3 for m in messages)


def answer_words(count: int) -> list[str]:
    return [f"word{i}" for i in range(count)]


class FakeOpenAI(StandIn):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.server = StandInServer(
            [
                ("POST", r"(/v1)?/chat/completions", self._chat),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def _chat(self, request: Request) -> None:
        body = request.json()
        self.requests.append(body)
        messages = body.get("messages", [])
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        directives = {name: float(value) if value else 0.0 for name, value in _DIRECTIVE.findall(last_user)}
        if "sleep" in directives:
            time.sleep(directives["sleep"])
        status = int(directives.get("status", 200))
        if status != 200:
            kind, message = _ERRORS.get(status, ("server_error", "error"))
            request.send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})
            return
        words = answer_words(int(directives.get("words", 5)))
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit:
            words = words[: int(limit)]
        usage = {
            "prompt_tokens": prompt_tokens(messages),
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens(messages) + len(words),
        }
        model = body.get("model", "gpt-4o-mini")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            self._stream(request, body, words, usage, model, completion_id, directives)
            return
        request.send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": "stop"}
                ],
                "usage": usage,
            },
        )

    def _stream(
        self,
        request: Request,
        body: dict[str, Any],
        words: list[str],
        usage: dict[str, int],
        model: str,
        completion_id: str,
        directives: dict[str, float],
    ) -> None:
        request.start_stream()
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        if "toolcall" in directives:
            self._stream_tool_call(request, chunk)
        elif not self._stream_words(request, chunk, words, directives):
            return  # the connection was dropped
        if (body.get("stream_options") or {}).get("include_usage"):
            request.write(
                f"data: {json.dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n".encode()
            )
        request.write(b"data: [DONE]\n\n")

    @staticmethod
    def _stream_tool_call(request: Request, chunk: Any) -> None:
        """One tool call as OpenAI streams it: id and name first, then the arguments in pieces."""
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        first = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": TOOL_CALL["name"], "arguments": ""},
        }
        request.write(chunk({"role": "assistant", "content": None, "tool_calls": [first]}))
        arguments = TOOL_CALL["arguments"]
        for start in range(0, len(arguments), 8):
            request.write(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start : start + 8]}}]})
            )
        request.write(chunk({}, "tool_calls"))

    def _stream_words(self, request: Request, chunk: Any, words: list[str], directives: dict[str, float]) -> bool:
        """The answer's words, one chunk each; False when ``#cut`` dropped the connection."""
        request.write(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            if "cut" in directives and index >= directives["cut"]:
                request.drop()
                return False
            if "hold" in directives and index == 1:
                self.release.wait(30)
            if directives.get("gap"):
                time.sleep(directives["gap"] / 1000)
            request.write(chunk({"content": word + (" " if index < len(words) - 1 else "")}))
        request.write(chunk({}, "stop"))
        return True
