"""An LLM provider that speaks the OpenAI Chat Completions wire protocol (JSON and SSE).

Behaviour is chosen by directives in the last user message, so concurrent tests don't share
state: ``#status:503`` answers that error, ``#sleep:2`` waits before answering, ``#words:40``
sets the answer's length, ``#gap:50`` waits 50 ms between streamed chunks, ``#cut:3`` drops
the connection after 3 streamed chunks, ``#hold`` streams one chunk then waits until released.
Usage counts are deterministic: one prompt token per word of all messages plus 3 per message
(plus one per word of the tools' JSON), the answer's words per choice times ``n``.

The protocol beyond text: ``tools`` are answered with a tool call (arguments built from the
tool's parameter schema) when ``tool_choice`` is required or names the tool, or the prompt says
``#tool`` (``#toolcall`` calls ``get_weather`` even when no tool was offered, as the chat page's
test needs); after a tool's result it answers in text (a forced call takes the first tool not
yet called); ``response_format`` with JSON (json_schema: an object of the schema's required
properties); ``n`` choices; ``logprobs``. Every request body is kept in ``requests``; a field
OpenAI does not know gets OpenAI's 400 ``Unrecognized request argument supplied: NAME``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from .http_server import Request, StandIn, StandInServer

_DIRECTIVE = re.compile(r"#(status|sleep|words|gap|cut|hold)(?::([\d.]+))?")
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


# The request fields OpenAI's Chat Completions endpoint knows; anything else gets its 400.
KNOWN_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "tools"}
    | {"tool_choice", "parallel_tool_calls", "response_format", "n", "seed", "stop", "temperature", "top_p"}
    | {"presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias", "reasoning_effort"}
    | {"modalities", "audio", "prediction", "service_tier", "metadata", "user", "store"}
    | {"safety_identifier", "prompt_cache_key", "prompt_cache_retention", "verbosity"}
)
# What the non-reasoning stand-in model refuses, as OpenAI does for gpt-4o-mini.
UNSUPPORTED_FIELDS = frozenset({"reasoning_effort"})


def example_for(schema: Any) -> Any:
    """A value that validates against a simple JSON Schema: each required property, typed
    (``{}`` for a schema too odd to read: fuzzed requests send any object as a schema)."""
    try:
        return _example(schema)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError):
        return {}


def _example(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _example(props.get(name)) for name in schema.get("required") or []}
    if kind == "array":
        return [_example(schema.get("items"))] if (schema.get("minItems") or 0) > 0 else []
    return {"string": "example", "integer": 1, "number": 1, "boolean": True, "null": None}.get(kind, "example")


# ``#toolcall``: a call of this tool whether or not it was offered.
TOOL_CALL = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
_UNOFFERED_TOOL = {"type": "function", "function": {"name": TOOL_CALL["name"], "arguments": TOOL_CALL["arguments"]}}


def tool_arguments(tool: dict[str, Any]) -> str:
    """The call's arguments: fixed for ``#toolcall``, else built from the tool's parameter schema."""
    fixed = tool["function"].get("arguments")
    return fixed if isinstance(fixed, str) else json.dumps(example_for(tool["function"].get("parameters")))


def chosen_tool(body: dict[str, Any], text: str) -> dict[str, Any] | None:
    """The tool to call: the named or required one, or the first when the prompt says #tool."""
    if "#toolcall" in text:
        return _UNOFFERED_TOOL
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return next((t for t in tools if t["function"]["name"] == choice["function"]["name"]), None)
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":  # a model answers a tool's result (unless forced)
        called = {c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
        fresh = [t for t in tools if t["function"]["name"] not in called]
        return (fresh or tools)[0] if choice == "required" else None
    if choice == "required" or "#tool" in text:
        return tools[0]  # type: ignore[no-any-return]
    return None


def structured_text(body: dict[str, Any]) -> str | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": "word0"})
    if response_format.get("type") == "json_schema":
        return json.dumps(example_for(response_format["json_schema"].get("schema")))
    return None


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
        for key in body:
            if key not in KNOWN_FIELDS:
                return self._error(request, 400, f"Unrecognized request argument supplied: {key}", key)
            if key in UNSUPPORTED_FIELDS:
                return self._error(request, 400, f"Unsupported parameter: '{key}' is not supported.", key)
        messages = body.get("messages", [])
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        directives = {name: float(value) if value else 0.0 for name, value in _DIRECTIVE.findall(last_user)}
        if "sleep" in directives:
            time.sleep(directives["sleep"])
        status = int(directives.get("status", 200))
        if status != 200:
            kind, text = _ERRORS.get(status, ("server_error", "error"))
            request.send_json(status, {"error": {"message": text, "type": kind, "param": None, "code": None}})
            return None
        words = answer_words(int(directives.get("words", 5)))
        structured = structured_text(body)
        if structured is not None:
            words = [structured]
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit:
            words = words[: int(limit)]
        tool = chosen_tool(body, last_user)
        n = int(body.get("n") or 1)
        per_choice = 3 if tool else len(words)
        prompt = prompt_tokens(messages) + (len(json.dumps(body["tools"]).split()) if body.get("tools") else 0)
        usage = {"prompt_tokens": prompt, "completion_tokens": per_choice * n, "total_tokens": prompt + per_choice * n}
        model = body.get("model", "gpt-4o-mini")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            self._stream(request, body, words, tool, usage, model, completion_id, directives)
            return None
        choices = []
        for index in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
            finish = "stop"
            if tool:
                arguments = tool_arguments(tool)
                message = {"role": "assistant", "content": None, "tool_calls": [_call(tool, index, arguments)]}
                finish = "tool_calls"
            choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": finish}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [_logprob(w, body.get("top_logprobs") or 0) for w in words]}
            choices.append(choice)
        request.send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": usage,
            },
        )
        return None

    def _error(self, request: Request, status: int, message: str, param: str) -> None:
        error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
        request.send_json(status, {"error": error})

    def _stream(
        self,
        request: Request,
        body: dict[str, Any],
        words: list[str],
        tool: dict[str, Any] | None,
        usage: dict[str, int],
        model: str,
        completion_id: str,
        directives: dict[str, float],
    ) -> None:
        request.start_stream()
        created = int(time.time())
        n = int(body.get("n") or 1)

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        for index in range(n):
            request.write(chunk(index, {"role": "assistant", "content": None if tool else ""}))
        if tool:
            # Arguments in fragments, as OpenAI streams them: id and name first, then the JSON in pieces.
            arguments = tool_arguments(tool)
            pieces = [arguments[i : i + 8] for i in range(0, len(arguments), 8)] or [""]
            deltas = [[{"index": 0, **_call(tool, index, "")}] for index in range(n)]
            for index in range(n):
                request.write(chunk(index, {"tool_calls": deltas[index]}))
                for piece in pieces:
                    request.write(chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            finish = "tool_calls"
        else:
            for position, word in enumerate(words):
                if "cut" in directives and position >= directives["cut"]:
                    request.drop()
                    return
                if "hold" in directives and position == 1:
                    self.release.wait(30)
                if directives.get("gap"):
                    time.sleep(directives["gap"] / 1000)
                for index in range(n):
                    request.write(chunk(index, {"content": word + (" " if position < len(words) - 1 else "")}))
            finish = "stop"
        for index in range(n):
            request.write(chunk(index, {}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            request.write(
                f"data: {json.dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n".encode()
            )
        request.write(b"data: [DONE]\n\n")


def _call(tool: dict[str, Any], index: int, arguments: str) -> dict[str, Any]:
    name = tool["function"]["name"]
    return {"id": f"call_{index}_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}


def _logprob(token: str, top: int) -> dict[str, Any]:
    entry = {"token": token, "logprob": -0.5, "bytes": list(token.encode())}
    return {**entry, "top_logprobs": [entry] * top}
