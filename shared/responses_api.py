"""The Responses API (``POST .../v1/responses``), translated to and from Chat Completions.

A stateless gateway serves the part of the Responses API that needs no server-side state. The
request becomes a Chat Completions body, parsed by the same checks as a chat completion
(``parse_chat_body``), and is answered by ``ChatService`` like one: one token check, the same
policy, budgets and rate limits, the Lago event before the last byte, partial billing of a cut
stream, the SIGTERM guarantee. This module only translates: the request in, then the
``chat.completion`` body out as a ``response`` object, or the chunk stream out as the Responses
API's named events (openai-openapi 2.3.0's shapes).

What needs stored state (``previous_response_id``, ``conversation``, ``store: true``, background
mode, stored prompts, item references, file ids) and the built-in tools (web and file search,
code interpreter...) are refused by name; so is any field the translation would drop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .chat_request import ChatRequest, json_body, parse_chat_body
from .errors import ApiError, ErrorCode
from .settings import Settings

# Fields whose value is copied to the chat body under the same name.
_SAME_NAME = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "moderation",
    "prompt_cache_options",
)
_TRANSLATED = ("model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "reasoning")
_STREAMING = ("stream", "stream_options")
# Documented, and refused unless null (or false, or their no-op value), with the reason.
_REFUSED = {
    "previous_response_id": "previous_response_id is not supported: this gateway keeps no responses; "
    "send the whole conversation in input.",
    "conversation": "conversation is not supported: this gateway keeps no conversations; "
    "send the whole conversation in input.",
    "store": "store: true is not supported: this gateway keeps no responses (send false or leave it out).",
    "background": "background: true is not supported: this gateway keeps no responses to poll.",
    "prompt": "prompt is not supported: stored prompts live on OpenAI's servers; send the text in input.",
    "include": "include is not supported by this gateway.",
    "max_tool_calls": "max_tool_calls is not supported: it limits built-in tools, which this gateway does not offer.",
    "truncation": "truncation: auto is not supported by this gateway.",
    "context_management": "context_management is not supported by this gateway.",
    "top_logprobs": "top_logprobs is not supported by this gateway on the Responses API; "
    "use Chat Completions' logprobs.",
}
_NO_OP = {"store": False, "background": False, "truncation": "disabled", "include": []}
# A chat error's param (and the words of its message) as the Responses API names the field.
_RENAMED = {
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
    "messages": "input",
}
_ROLES = ("user", "assistant", "system", "developer")


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, param=param)


@dataclass(frozen=True)
class ResponsesRequest:
    """A checked Responses request: the chat request that serves it, and what the response repeats."""

    chat: ChatRequest
    echo: dict[str, Any] = field(default_factory=dict)


def parse_responses_request(raw: bytes, settings: Settings) -> ResponsesRequest:
    """Parse the body or raise the documented 4xx ``ApiError``."""
    return parse_responses_body(json_body(raw), settings)


def parse_responses_body(body: Any, settings: Settings) -> ResponsesRequest:
    """Translate and check a Responses request body, or raise the 4xx ``ApiError`` naming a field."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    known = set(_SAME_NAME) | set(_TRANSLATED) | set(_STREAMING) | set(_REFUSED)
    for key in body:
        if key not in known:
            raise _invalid(f"Unrecognized request argument supplied: {key}", key)
    for key, reason in _REFUSED.items():
        if body.get(key) is not None and body[key] != _NO_OP.get(key, object()):
            raise _invalid(reason, key)
    chat: dict[str, Any] = {key: body[key] for key in _SAME_NAME if body.get(key) is not None}
    if body.get("model") is not None:
        chat["model"] = body["model"]
    chat["messages"] = _instructions(body.get("instructions")) + input_messages(body.get("input"))
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    chat.update(_text(body.get("text")))
    chat.update(_reasoning(body.get("reasoning")))
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    stream = body.get("stream")
    if stream is not None:
        chat["stream"] = stream
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"include_obfuscation"}:
            raise _invalid("stream_options may hold include_obfuscation only.", "stream_options")
        chat["stream_options"] = options
    if stream is True:  # the usage chunk is what response.completed reports
        chat["stream_options"] = {**(options or {}), "include_usage": True}
    try:
        request = parse_chat_body(chat, settings)
    except ApiError as error:
        raise _renamed(error) from None
    return ResponsesRequest(request, _echo(body, request))


def _renamed(error: ApiError) -> ApiError:
    param, message = error.param, error.message
    for chat_name, name in _RENAMED.items():
        if param is not None and param.startswith(chat_name):
            param = name
        message = message.replace(chat_name, name)
    return ApiError(error.code, message, param=param, headers=error.headers)


def _instructions(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise _invalid("instructions must be a string.", "instructions")
    return [{"role": "system", "content": value}]


def input_messages(value: Any) -> list[dict[str, Any]]:
    """The chat messages of ``input``: a string, or a list of messages and function call items."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _invalid("input must be a string or a non-empty array of input items.", "input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise _invalid(f"{where} must be an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = _function_call(item, where)
            last = messages[-1] if messages else None
            if last is not None and last.get("role") == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)  # parallel calls: one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(_function_call_output(item, where))
        elif kind == "item_reference":
            raise _invalid(f"{where}: item_reference is not supported: this gateway keeps no items.", where)
        else:
            raise _invalid(f"{where}: input items of type '{str(kind)[:64]}' are not supported by this gateway.", where)
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(item) - {"type", "role", "content", "id", "status", "phase"}
    if unknown:
        raise _invalid(f"Unrecognized argument in {where}: {sorted(unknown)[0]}", where)
    role = item.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role must be one of {', '.join(_ROLES)}.", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list) or not content:
        raise _invalid(f"{where}.content must be a string or a non-empty array of parts.", f"{where}.content")
    return {"role": role, "content": [_part(part, f"{where}.content") for part in content]}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "refusal", "refusal": part["refusal"]}
    if kind == "input_image" and isinstance(part, dict):
        if part.get("file_id") is not None or not isinstance(part.get("image_url"), str):
            raise _invalid(f"{where}: input_image needs image_url (file_id is not supported by this gateway).", where)
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail") or "auto"}}
    if kind == "input_file" and isinstance(part, dict):
        if part.get("file_id") is not None or part.get("file_url") is not None:
            raise _invalid(f"{where}: input_file needs inline file_data (file_id, file_url: not supported).", where)
        file = {key: part[key] for key in ("file_data", "filename") if part.get(key) is not None}
        return {"type": "file", "file": file}
    raise _invalid(
        f"{where}: parts are input_text, input_image, input_file (and output_text, refusal from assistants).", where
    )


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    if not all(isinstance(item.get(key), str) for key in ("call_id", "name", "arguments")):
        raise _invalid(f"{where}: a function_call needs call_id, name and arguments (strings).", where)
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def _function_call_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):
        texts = [
            p.get("text") for p in output if isinstance(p, dict) and p.get("type") in ("input_text", "output_text")
        ]
        if len(texts) != len(output) or not all(isinstance(t, str) for t in texts):
            raise _invalid(f"{where}.output: only text parts are supported by this gateway.", f"{where}.output")
        output = "".join(texts)  # type: ignore[arg-type]
    if not isinstance(item.get("call_id"), str) or not isinstance(output, str):
        raise _invalid(f"{where}: a function_call_output needs call_id and output (strings).", where)
    return {"role": "tool", "tool_call_id": item["call_id"], "content": output}


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _invalid("tools must be an array.", "tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _invalid(f"{where}: the tool type '{str(kind)[:64]}' is not supported by this gateway.", where)
        unknown = set(tool) - {"type", "name", "description", "parameters", "strict"}
        if unknown:
            raise _invalid(f"Unrecognized argument in {where}: {sorted(unknown)[0]}", where)
        function = {
            key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None
        }
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and set(value) == {"type", "name"}:
        return {"type": "function", "function": {"name": value["name"]}}
    kind = value.get("type") if isinstance(value, dict) else None
    raise _invalid(f"tool_choice of type '{str(kind)[:64]}' is not supported by this gateway.", "tool_choice")


def _text(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"format", "verbosity"}:
        raise _invalid("text may hold format and verbosity.", "text")
    out: dict[str, Any] = {}
    if value.get("verbosity") is not None:
        out["verbosity"] = value["verbosity"]
    fmt = value.get("format")
    if fmt is None:
        return out
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        out["response_format"] = {"type": kind}
    elif kind == "json_schema":
        schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if fmt.get(key) is not None}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise _invalid("text.format.type must be text, json_object or json_schema.", "text.format")
    return out


def _reasoning(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("reasoning must be an object.", "reasoning")
    for key in value:
        if key != "effort" and value[key] is not None:
            raise _invalid(f"reasoning.{key} is not supported by this gateway.", f"reasoning.{key}")
    return {"reasoning_effort": value["effort"]} if value.get("effort") is not None else {}


def _echo(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """The request's settings as the response object repeats them."""
    tools = [
        {"type": "function", "name": t["name"], "description": t.get("description"), "parameters": t.get("parameters")}
        | {"strict": t.get("strict")}
        for t in body.get("tools") or []
    ]
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": request.params.get("max_completion_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "text": {"format": text_format, "verbosity": (body.get("text") or {}).get("verbosity") or "medium"},
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "previous_response_id": None,
        "store": False,
        "background": False,
        "truncation": "disabled",
        "service_tier": body.get("service_tier") or "auto",
    }
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        if body.get(key) is not None:
            echo[key] = body[key]
    return echo


# --- the answer -------------------------------------------------------------------------------


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    out: dict[str, Any] = {
        "input_tokens": usage.get("prompt_tokens", 0),
        "input_tokens_details": {
            "cached_tokens": details.get("cached_tokens") or 0,
            "cache_write_tokens": details.get("cache_write_tokens") or 0,
        },
        "output_tokens": usage.get("completion_tokens", 0),
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        },
        "total_tokens": usage.get("total_tokens", 0),
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]  # dollars, as billed (the spec allows extra fields)
    return out


def _finished(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """The response's status and ``incomplete_details`` for the chat choice's finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": [part]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _ids(response_id: str) -> tuple[str, str]:
    """The ids of a response's message item and the prefix of its function call items."""
    suffix = response_id.split("-", 1)[-1]
    return f"msg_{suffix}", f"fc_{suffix}"


def response_object(
    response_id: str,
    model: str,
    created_at: int,
    echo: dict[str, Any],
    *,
    status: str = "in_progress",
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output or [],
        **echo,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def response_body(completion: dict[str, Any], request: ResponsesRequest) -> dict[str, Any]:
    """The ``response`` object of a ``chat.completion`` body (its first and only choice)."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    message_id, call_prefix = _ids(completion["id"])
    output: list[dict[str, Any]] = []
    if message.get("refusal"):
        refusal = {"type": "refusal", "refusal": message["refusal"]}
        output.append(
            {"type": "message", "id": message_id, "status": "completed", "role": "assistant", "content": [refusal]}
        )
    elif message.get("content"):
        output.append(_message_item(message_id, message["content"], "completed"))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        output.append(
            _call_item(
                f"{call_prefix}_{index}",
                call.get("id", ""),
                function.get("name", ""),
                function.get("arguments", ""),
                "completed",
            )
        )
    status, incomplete = _finished(choice.get("finish_reason"))
    return response_object(
        completion["id"],
        completion["model"],
        completion.get("created") or int(time.time()),
        request.echo,
        status=status,
        output=output,
        usage=_usage(completion.get("usage")),
        incomplete=incomplete,
    )


class _Events:
    """The named events of one streamed response, numbered in order."""

    def __init__(self, response_id: str, model: str, echo: dict[str, Any]) -> None:
        self.response_id, self.model, self.echo = response_id, model, echo
        self.created_at = int(time.time())
        self.message_id, self.call_prefix = _ids(response_id)
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.text: str | None = None  # the open message's text
        self.text_index = -1
        self.calls: dict[int, int] = {}  # the chat tool call's index -> its output index
        self.open_call: int | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> str:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"

    def response(self, **fields: Any) -> dict[str, Any]:
        return response_object(self.response_id, self.model, self.created_at, self.echo, **fields)

    def start(self) -> Iterator[str]:
        yield self.event("response.created", response=self.response())
        yield self.event("response.in_progress", response=self.response())

    def chunk(self, chunk: dict[str, Any]) -> Iterator[str]:
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield from self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                yield from self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _text_delta(self, delta: str) -> Iterator[str]:
        yield from self._close_call()
        if self.text is None:
            self.text, self.text_index = "", len(self.output)
            self.output.append(_message_item(self.message_id, "", "in_progress") | {"content": []})
            yield self.event("response.output_item.added", output_index=self.text_index, item=self.output[-1])
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield self.event(
                "response.content_part.added",
                item_id=self.message_id,
                output_index=self.text_index,
                content_index=0,
                part=part,
            )
        self.text += delta
        yield self.event(
            "response.output_text.delta",
            item_id=self.message_id,
            output_index=self.text_index,
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def _close_text(self) -> Iterator[str]:
        if self.text is None:
            return
        text, index = self.text, self.text_index
        self.text = None
        item = _message_item(self.message_id, text, "completed")
        self.output[index] = item
        common = {"item_id": self.message_id, "output_index": index, "content_index": 0}
        yield self.event("response.output_text.done", **common, text=text, logprobs=[])
        yield self.event("response.content_part.done", **common, part=item["content"][0])
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _call_delta(self, call: dict[str, Any]) -> Iterator[str]:
        yield from self._close_text()
        function = call.get("function") or {}
        position = int(call.get("index", 0))
        if position not in self.calls:
            yield from self._close_call()
            index = len(self.output)
            self.calls[position], self.open_call = index, index
            item_id = f"{self.call_prefix}_{len(self.calls) - 1}"
            self.output.append(
                _call_item(item_id, call.get("id") or item_id, function.get("name") or "", "", "in_progress")
            )
            yield self.event("response.output_item.added", output_index=index, item=dict(self.output[index]))
        index = self.calls[position]
        item = self.output[index]
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            yield self.event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=function["arguments"],
            )

    def _close_call(self) -> Iterator[str]:
        if self.open_call is None:
            return
        index, self.open_call = self.open_call, None
        item = self.output[index]
        item["status"] = "completed"
        yield self.event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            name=item["name"],
            output_index=index,
            arguments=item["arguments"],
        )
        yield self.event("response.output_item.done", output_index=index, item=dict(item))

    def finish(self) -> Iterator[str]:
        yield from self._close_text()
        yield from self._close_call()
        status, incomplete = _finished(self.finish_reason)
        final = self.response(status=status, output=self.output, usage=self.usage, incomplete=incomplete)
        yield self.event("response.completed" if status == "completed" else "response.incomplete", response=final)

    def fail(self, error: dict[str, Any]) -> Iterator[str]:
        """The stream failed after it started (the provider cut it, the instance is stopping)."""
        code = "rate_limit_exceeded" if error.get("code") == "rate_limit_exceeded" else "server_error"
        message = str(error.get("message") or "The model call failed.")
        yield self.event("error", code=error.get("code"), message=message, param=error.get("param"))
        failed = self.response(status="failed", output=self.output, error={"code": code, "message": message})
        yield self.event("response.failed", response=failed)


def response_events(lines: Iterator[str], response_id: str, request: ResponsesRequest) -> Iterator[str]:
    """The Responses API's events for a chat completion's SSE lines (``ChatService.stream``).

    The chat stream bills before its last line (``[DONE]`` or an error), so the last event here,
    which follows that line, also comes after the billing. Closing this closes the chat stream
    (its cleanup bills a stream the client abandoned)."""
    events = _Events(response_id, request.chat.model, request.echo)
    try:
        yield from events.start()
        for line in lines:
            data = line.removeprefix("data: ").strip()
            if data == "[DONE]":
                yield from events.finish()
                return
            body = json.loads(data)
            if "error" in body:
                yield from events.fail(body["error"])
                return
            yield from events.chunk(body)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
