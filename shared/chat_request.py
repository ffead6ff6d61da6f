"""The chat completions request body: parsed, checked and reduced to what we pass to LiteLLM."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import litellm

from .chat_params import END_USER_FIELDS, check_fields
from .errors import ApiError, ErrorCode
from .settings import Settings

_ROLES = ("system", "developer", "user", "assistant", "tool")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls", "refusal", "audio"})
_DETAILS = ("auto", "low", "high")
_AUDIO_FORMATS = ("wav", "mp3")
# Worst-case prompt tokens of the parts LiteLLM cannot count without fetching or decoding them
# (the budget's reservation; the bill is the provider's count). An image: OpenAI's largest count,
# gpt-4o-mini's 2,833 + 5,667 per 512-px tile, 8 tiles at most at high detail (2,833 at low).
IMAGE_TOKENS_HIGH = 2833 + 5667 * 8
IMAGE_TOKENS_LOW = 2833
# Audio and files: one token per byte of their base64 text, far above any provider's count.
BYTES_PER_MEDIA_TOKEN = 1


@dataclass(frozen=True)
class ChatRequest:
    """A checked request. ``params`` are the keyword arguments LiteLLM receives beyond the messages.

    ``end_user`` names the fields the caller sent that identify an end user (``user``,
    ``safety_identifier``): the provider gets the caller's uid hash in their place (never the sent
    value, which no one verified). ``media_tokens`` is the worst case of
    the image, audio and file parts, which the budget adds to the counted text.
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    params: dict[str, Any]
    n: int = 1
    end_user: tuple[str, ...] = ()
    media_tokens: int = 0

    @property
    def max_tokens(self) -> int:
        """The completion limit of one choice."""
        return int(min(self.params.get(k) or 1 << 62 for k in ("max_tokens", "max_completion_tokens")))


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, param=param)


def parse_chat_request(raw: bytes, settings: Settings) -> ChatRequest:
    """Parse the body or raise the documented 4xx ``ApiError``."""
    return parse_chat_body(json_body(raw), settings)


def parse_chat_body(body: Any, settings: Settings) -> ChatRequest:
    """Check a decoded body (the Responses API's translation too) or raise the 4xx ``ApiError``."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = _model(body.get("model"), settings)
    fields = check_fields(body, model)
    parts = _PartCounter(model)
    messages = _messages(body.get("messages"), settings.max_messages, parts)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream must be a boolean.", "stream")
    include_usage = _stream_options(body.get("stream_options"))
    params = {k: v for k, v in fields.items() if k not in (*END_USER_FIELDS, "metadata")}
    if "metadata" in fields:
        params["extra_body"] = {"metadata": fields["metadata"]}
    params.update(_limits(body, settings.max_tokens))
    return ChatRequest(
        model,
        messages,
        bool(stream),
        include_usage,
        params,
        n=int(fields.get("n", 1)),
        end_user=tuple(name for name in END_USER_FIELDS if name in fields),
        media_tokens=parts.tokens,
    )


def _stream_options(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, dict):
        raise _invalid("stream_options must be an object.", "stream_options")
    for key in value:
        if key not in ("include_usage", "include_obfuscation"):
            raise _invalid(f"Unrecognized request argument supplied: stream_options.{key}", "stream_options")
    if not isinstance(value.get("include_obfuscation", False), bool):
        raise _invalid("stream_options.include_obfuscation must be a boolean.", "stream_options")
    include_usage = value.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise _invalid("stream_options.include_usage must be a boolean.", "stream_options")
    return include_usage


def _limits(body: dict[str, Any], cap: int) -> dict[str, int]:
    """Each completion limit the caller sent, capped by ``CHAT_MAX_TOKENS`` (``max_tokens`` if none)."""
    limits: dict[str, int] = {}
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        integral = isinstance(value, float) and value.is_integer()  # 1.0 is an integer to JSON
        if not (isinstance(value, int) or integral) or isinstance(value, bool) or value < 1:
            raise _invalid(f"{key} must be an integer of at least 1.", key)
        limits[key] = min(int(value), cap)
    return limits or {"max_tokens": cap}


def json_body(raw: bytes) -> Any:
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
    model = settings.model_for(value)  # a public id (CHAT_MODELS' ID=MODEL) is billed as its model
    if model is None:
        raise ApiError(
            ErrorCode.MODEL_NOT_FOUND,
            f"The model '{value[:100]}' does not exist or you do not have access to it.",
            param="model",
        )
    return model


class _PartCounter:
    """Checks content parts against the model's inputs and adds up their worst-case tokens."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.tokens = 0

    def takes(self, kind: str, where: str) -> None:
        check = {
            "image_url": litellm.supports_vision,
            "input_audio": litellm.supports_audio_input,
            "file": litellm.supports_pdf_input,
        }[kind]
        try:
            supported = bool(check(self.model))
        except Exception:  # noqa: BLE001 - a model LiteLLM does not know takes text only
            supported = False
        if not supported:
            raise _invalid(f"The model '{self.model}' does not accept '{kind}' content parts.", where)


def _messages(value: Any, max_messages: int, parts: _PartCounter) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages must be a non-empty array.", "messages")
    if len(value) > max_messages:
        raise _invalid(f"messages may hold at most {max_messages} items.", "messages")
    return [_message(item, index, parts) for index, item in enumerate(value)]


def _message(item: Any, index: int, parts: _PartCounter) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise _invalid(f"{where} must be an object.", where)
    for key in item:
        if key not in _MESSAGE_KEYS:
            raise _invalid(f"Unrecognized request argument supplied: {where}.{key}", f"{where}.{key}")
    role = item.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role must be one of {', '.join(_ROLES)}.", f"{where}.role")
    content = item.get("content")
    if content is None and not (role == "assistant" and (item.get("tool_calls") or item.get("audio"))):
        raise _invalid(f"{where}.content is required.", f"{where}.content")
    if content is not None and not isinstance(content, str):
        _check_parts(content, where, role, parts)
    for key in ("name", "tool_call_id", "refusal"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise _invalid(f"{where}.{key} must be a string.", f"{where}.{key}")
    if item.get("audio") is not None and not isinstance(item["audio"], dict):
        raise _invalid(f"{where}.audio must be an object.", f"{where}.audio")
    if item.get("tool_calls") is not None:
        _check_tool_calls(item["tool_calls"], f"{where}.tool_calls")
    if role == "tool" and not isinstance(item.get("tool_call_id"), str):
        raise _invalid(f"{where}.tool_call_id is required for tool messages.", f"{where}.tool_call_id")
    return {key: value for key, value in item.items() if value is not None}


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise _invalid(f"{where} must be an array.", where)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not (
            isinstance(call, dict)
            and isinstance(call.get("id"), str)
            and call.get("type") == "function"
            and isinstance(function, dict)
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments"), str)
        ):
            raise _invalid(
                f"{where} items must be {{'id', 'type': 'function', 'function': {{'name', 'arguments': string}}}}.",
                where,
            )


def _check_parts(content: Any, where: str, role: str, parts: _PartCounter) -> None:
    where = f"{where}.content"
    if not isinstance(content, list) or not content:
        raise _invalid(f"{where} must be a string or a non-empty array of content parts.", where)
    allowed = ("text", "image_url", "input_audio", "file") if role == "user" else ("text", "refusal")
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in allowed:
            raise _invalid(f"{where} parts of a {role} message must have a type among {', '.join(allowed)}.", where)
        if kind in ("text", "refusal"):
            if not isinstance(part.get(kind), str):
                raise _invalid(f"{where}: a {kind} part needs a string '{kind}'.", where)
            continue
        parts.takes(kind, where)
        parts.tokens += _media_part(kind, part.get(kind), where)


def _media_part(kind: str, value: Any, where: str) -> int:
    """Check an image, audio or file part; return its worst-case prompt tokens."""
    if not isinstance(value, dict):
        raise _invalid(f"{where}: a {kind} part needs a '{kind}' object.", where)
    if kind == "image_url":
        url = value.get("url")
        # Only https and inline data: the provider must not be made to fetch internal addresses.
        if not isinstance(url, str) or not (url.startswith("https://") or url.startswith("data:image/")):
            raise _invalid(f"{where}: image_url.url must be an https:// URL or a data:image/ URI.", where)
        detail = value.get("detail", "auto")
        if detail not in _DETAILS:
            raise _invalid(f"{where}: image_url.detail must be one of {', '.join(_DETAILS)}.", where)
        return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH
    if kind == "input_audio":
        if not isinstance(value.get("data"), str) or value.get("format") not in _AUDIO_FORMATS:
            raise _invalid(f"{where}: input_audio needs base64 'data' and a format of wav or mp3.", where)
        return len(value["data"]) // BYTES_PER_MEDIA_TOKEN
    # A file travels inline only: a provider file_id would reach files this service's key uploaded.
    if "filename" in value and not isinstance(value["filename"], str):
        raise _invalid(f"{where}: file.filename must be a string.", where)
    if not isinstance(value.get("file_data"), str) or "file_id" in value:
        raise _invalid(f"{where}: file needs inline 'file_data' (file_id is not accepted).", where)
    return len(value["file_data"]) // BYTES_PER_MEDIA_TOKEN


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with media parts removed (counted separately, never fetched)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": [p for p in content if p.get("type") in ("text", "refusal")] or ""}
        out.append(message)
    return out


def worst_case_tokens(request: ChatRequest) -> tuple[int, int]:
    """``(prompt, completion)`` tokens the call may use at most, for the budget's reservation.

    Prompt: the messages and tools as LiteLLM counts them for the model, the response_format
    schema's text, and the media parts' bounds. Completion: ``max_tokens`` for each of the n choices.
    """
    tools = request.params.get("tools")
    messages = _text_only(request.messages)
    response_format = request.params.get("response_format")
    try:
        prompt = litellm.token_counter(model=request.model, messages=messages, tools=tools)
        if response_format is not None:
            prompt += litellm.token_counter(model=request.model, text=json.dumps(response_format))
    except Exception:  # noqa: BLE001 - a shape LiteLLM cannot count: a token per character bounds it
        prompt = len(json.dumps([messages, tools, response_format]))
    return prompt + request.media_tokens, request.max_tokens * request.n
