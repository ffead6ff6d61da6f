"""The chat completions request body: parsed, checked and reduced to what we pass to LiteLLM."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, ErrorCode
from .settings import Settings

_ROLES = ("system", "developer", "user", "assistant", "tool")
_MESSAGE_KEYS = ("role", "content", "name", "tool_call_id", "tool_calls")


@dataclass(frozen=True)
class ChatRequest:
    """A checked request. ``params`` are the optional sampling parameters LiteLLM receives."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    params: dict[str, Any]


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, param=param)


def parse_chat_request(raw: bytes, settings: Settings) -> ChatRequest:
    """Parse the body or raise the documented 4xx ``ApiError``."""
    body = _json_body(raw)
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = _model(body.get("model"), settings)
    messages = _messages(body.get("messages"), settings.max_messages)
    stream = _optional(body, "stream", bool) or False
    stream_options = _optional(body, "stream_options", dict) or {}
    include_usage = stream_options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise _invalid("stream_options.include_usage must be a boolean.", "stream_options")
    return ChatRequest(model, messages, stream, include_usage, _params(body, settings))


def _json_body(raw: bytes) -> Any:
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(ErrorCode.INVALID_JSON, "The request body is not valid JSON.") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, and int()'s digit limit
        digits = "digits" in str(error) and not isinstance(error, json.JSONDecodeError)
        message = "A number in the request body is too long (the limit is 4300 digits)." if digits else ""
        raise ApiError(ErrorCode.INVALID_JSON, message or "The request body is not valid JSON.") from None
    try:
        # JSON's \ud800 escapes decode to lone surrogates, which no provider can be sent.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            ErrorCode.INVALID_JSON, "The request body holds invalid Unicode (an unpaired surrogate)."
        ) from None
    return body


def _model(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.default_model
    if not isinstance(value, str) or not value:
        raise _invalid("model must be a non-empty string.", "model")
    if value not in settings.chat_models:
        raise ApiError(
            ErrorCode.MODEL_NOT_FOUND,
            f"The model '{value[:100]}' does not exist or you do not have access to it.",
            param="model",
        )
    return value


def _messages(value: Any, max_messages: int) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages must be a non-empty array.", "messages")
    if len(value) > max_messages:
        raise _invalid(f"messages may hold at most {max_messages} items.", "messages")
    return [_message(item, index) for index, item in enumerate(value)]


def _message(item: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise _invalid(f"{where} must be an object.", where)
    role = item.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role must be one of {', '.join(_ROLES)}.", f"{where}.role")
    content = item.get("content")
    if content is None and not (role == "assistant" and item.get("tool_calls")):
        raise _invalid(f"{where}.content is required.", f"{where}.content")
    if content is not None and not isinstance(content, str):
        _check_parts(content, where)
    for key in ("name", "tool_call_id"):
        if key in item and not isinstance(item[key], str):
            raise _invalid(f"{where}.{key} must be a string.", f"{where}.{key}")
    if "tool_calls" in item:
        _check_tool_calls(item["tool_calls"], f"{where}.tool_calls")
    if role == "tool" and not isinstance(item.get("tool_call_id"), str):
        raise _invalid(f"{where}.tool_call_id is required for tool messages.", f"{where}.tool_call_id")
    return {key: item[key] for key in _MESSAGE_KEYS if key in item}


def _check_tool_calls(value: Any, param: str) -> None:
    if not isinstance(value, list):
        raise _invalid(f"{param} must be an array.", param)
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        ok = (
            isinstance(function, dict)
            and isinstance(call.get("id"), str)
            and call.get("type", "function") == "function"
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments"), str)
        )
        if not ok:
            shape = "{'id': string, 'type': 'function', 'function': {'name': string, 'arguments': string}}"
            raise _invalid(f"{param} items must be {shape}.", param)


def _check_parts(content: Any, where: str) -> None:
    if not isinstance(content, list) or not content:
        raise _invalid(f"{where}.content must be a string or a non-empty array of text parts.", f"{where}.content")
    for part in content:
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise _invalid(f"{where}.content parts must be {{'type': 'text', 'text': string}}.", f"{where}.content")


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise _invalid(f"{key} must be {'a number' if kind in (int, float) else 'of type ' + kind.__name__}.", key)
    return value


def _params(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = _optional(body, key, float)
        if value is not None:
            if not low <= value <= high:
                raise _invalid(f"{key} must be between {low} and {high}.", key)
            params[key] = value
    limits = [
        v for v in (_optional(body, "max_tokens", int), _optional(body, "max_completion_tokens", int)) if v is not None
    ]
    if any(v < 1 for v in limits):
        raise _invalid("max_tokens must be at least 1.", "max_tokens")
    params["max_tokens"] = min([settings.max_tokens, *limits])
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
            raise _invalid("stop must be a string or an array of at most 4 strings.", "stop")
        params["stop"] = stop
    return params
