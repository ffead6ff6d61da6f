"""The chat completions request body: parsed, checked and reduced to what we pass to LiteLLM."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import litellm

from .chat_params import END_USER_FIELDS, check_fields
from .errors import ApiError, ErrorCode
from .settings import Settings

_ROLES = ("system", "developer", "user", "assistant", "tool")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls", "refusal", "audio"})
_DETAILS = ("auto", "low", "high")
_AUDIO_FORMATS = ("wav", "mp3")
# Deeper JSON than any real schema: LiteLLM walks tools and schemas recursively and fails past a
# few hundred levels (a RecursionError, once a 502), so the body is refused first, naming the field.
MAX_JSON_DEPTH = 64
# The one allow-list of the URL-like fields a caller controls, and the forms each may take:
# - ``image_url.url``: ``https:`` (the provider fetches it) or inline ``data:image/...;base64``;
#   https only for the providers LiteLLM hands the URL to as it is (``PROVIDERS_GIVEN_IMAGE_URLS``):
#   for the others (Gemini, Vertex AI) LiteLLM downloads it inside this function;
# - ``file.file_data``: inline ``data:...;base64`` only: LiteLLM turns a ``gs://`` value into a
#   Vertex ``file_uri`` that Vertex reads with the function's service account, and forwards or
#   fetches http(s) URLs;
# - ``input_audio.data``: base64 only.
# A media object holds only its documented keys: LiteLLM also reads ``format``, ``mime_type``,
# ``file_url`` and others from it.
URL_FORMS = {"image_url.url": ("https://", "data:image/"), "file.file_data": ("data:",)}
PROVIDERS_GIVEN_IMAGE_URLS = frozenset({"openai", "azure", "anthropic"})
_MEDIA_KEYS = {"image_url": {"url", "detail"}, "input_audio": {"data", "format"}, "file": {"file_data", "filename"}}
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_DATA_URI = re.compile(r"data:([a-z]+/[A-Za-z0-9.+-]+);base64,")


@dataclass(frozen=True)
class ChatRequest:
    """A checked request. ``params`` are the keyword arguments LiteLLM receives beyond the messages.

    ``end_user`` names the fields the caller sent that identify an end user (``user``,
    ``safety_identifier``): the provider gets the caller's uid hash in their place (never the sent
    value, which no one verified).
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    params: dict[str, Any]
    n: int = 1
    end_user: tuple[str, ...] = ()

    @property
    def max_tokens(self) -> int:
        """The completion limit of one choice: the one limit the provider gets."""
        return int(self.params.get("max_tokens") or self.params["max_completion_tokens"])


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
    parts = _PartChecker(model)
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
    """The completion limit the caller sent, capped by ``CHAT_MAX_TOKENS`` (``max_tokens`` if none).

    Both at once are refused: OpenAI documents them as alternatives, and LiteLLM sends the
    provider whichever it reads last, so the limit reserved would not be the limit used."""
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise _invalid(
            "Send max_tokens or max_completion_tokens, not both (max_tokens is the deprecated name).",
            "max_completion_tokens",
        )
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
    if isinstance(body, dict):
        _check_depth(body)  # before anything walks the body recursively (the encoder below, LiteLLM)
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


class _PartChecker:
    """Checks content parts against what the model takes and what its provider is given."""

    def __init__(self, model: str) -> None:
        self.model = model
        try:
            self.provider = str(litellm.get_llm_provider(model)[1])
        except Exception:  # noqa: BLE001 - a provider LiteLLM does not know (the local model)
            self.provider = ""

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


def _check_depth(body: dict[str, Any]) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH``, naming the top-level field (and item)."""
    for key, value in body.items():
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if _depth(item) > MAX_JSON_DEPTH - 2:
                where = key if index is None else f"{key}[{index}]"
                raise _invalid(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep.", where)


def _depth(value: Any) -> int:
    """How deep ``value`` nests (an iterative walk: deep JSON must not exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _messages(value: Any, max_messages: int, parts: _PartChecker) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages must be a non-empty array.", "messages")
    if len(value) > max_messages:
        raise _invalid(f"messages may hold at most {max_messages} items.", "messages")
    return [_message(item, index, parts) for index, item in enumerate(value)]


def _message(item: Any, index: int, parts: _PartChecker) -> dict[str, Any]:
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


def _check_parts(content: Any, where: str, role: str, parts: _PartChecker) -> None:
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
        unknown = sorted(set(part) - {"type", kind})
        if unknown:
            raise _invalid(f"Unrecognized request argument supplied: {where}.{unknown[0]}", where)
        _media_part(kind, part.get(kind), where, parts.provider)


def _media_part(kind: str, value: Any, where: str, provider: str) -> None:
    """Check an image, audio or file part against ``URL_FORMS`` and its documented keys."""
    if not isinstance(value, dict):
        raise _invalid(f"{where}: a {kind} part needs a '{kind}' object.", where)
    unknown = sorted(set(value) - _MEDIA_KEYS[kind])
    if unknown:
        raise _invalid(f"Unrecognized request argument supplied: {where}.{kind}.{unknown[0]}", where)
    if kind == "image_url":
        _check_image_url(value.get("url"), where, provider)
        if value.get("detail", "auto") not in _DETAILS:
            raise _invalid(f"{where}: image_url.detail must be one of {', '.join(_DETAILS)}.", where)
    elif kind == "input_audio":
        data = value.get("data")
        if not isinstance(data, str) or not _BASE64.fullmatch(data) or value.get("format") not in _AUDIO_FORMATS:
            raise _invalid(f"{where}: input_audio needs base64 'data' and a format of wav or mp3.", where)
    else:
        # A file travels inline only: a provider file_id would reach files this service's key uploaded.
        if "filename" in value and not isinstance(value["filename"], str):
            raise _invalid(f"{where}: file.filename must be a string.", where)
        if not _url_allowed("file.file_data", value.get("file_data"), provider):
            raise _invalid(
                f"{where}: file.file_data must be a base64 data: URI (file_id and URLs are not accepted).", where
            )


def _check_image_url(url: Any, where: str, provider: str) -> None:
    if _url_allowed("image_url.url", url, provider):
        return
    if isinstance(url, str) and _is_https_url(url):
        raise _invalid(
            f"{where}: this model's images must be inline (a base64 data:image/ URI): its provider "
            "would have this service download the URL.",
            where,
        )
    raise _invalid(f"{where}: image_url.url must be an https:// URL or a base64 data:image/ URI.", where)


def _url_allowed(field: str, value: Any, provider: str) -> bool:
    """Whether ``value`` takes one of the forms ``URL_FORMS`` allows ``field`` for ``provider``."""
    if not isinstance(value, str):
        return False
    for form in URL_FORMS[field]:
        if form == "https://":
            if provider in PROVIDERS_GIVEN_IMAGE_URLS and _is_https_url(value):
                return True
        elif _is_data_uri(value, form.removeprefix("data:")):
            return True
    return False


def _is_data_uri(value: str, mime_prefix: str) -> bool:
    """``data:<type>/<subtype>;base64,<base64>`` and nothing else (no parameters, no URL inside)."""
    head = _DATA_URI.match(value)
    return bool(head and head.group(1).startswith(mime_prefix) and _BASE64.fullmatch(value, head.end()))


def _is_https_url(url: str) -> bool:
    """An https URL with a host; no whitespace or control characters, and no ``gs://`` anywhere
    in it (LiteLLM reads any URL containing one as a Cloud Storage URI)."""
    if "gs://" in url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme == "https" and bool(parts.hostname)
    except ValueError:
        return False
