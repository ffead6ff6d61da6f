"""The optional Chat Completions fields: each one's shape, and whether the chosen model takes it.

Every field of ``CreateChatCompletionRequest`` in OpenAI's OpenAPI document (openai-openapi
2.3.0) is either checked here and passed to LiteLLM, refused by name as not supported by this
gateway, or (``store: false``, the default anyway) accepted and not forwarded; a null is an absent
field. A field the document does not name gets OpenAI's own answer, ``Unrecognized request
argument supplied: NAME``. Which fields a model takes is said in one place, ``supported_fields``:
LiteLLM's ``get_supported_openai_params`` for the model's provider (the local model declares its
own), so a field is never dropped silently on the way to the provider.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import litellm

from .errors import ApiError, ErrorCode

# Fields handled elsewhere (chat_request): always accepted whatever the model.
BASE_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"})
# Documented by OpenAI but not offered here, with the reason the caller sees.
_REFUSED = {
    "functions": "functions is deprecated and not supported by this gateway; use tools.",
    "function_call": "function_call is deprecated and not supported by this gateway; use tool_choice.",
    "web_search_options": "web_search_options is not supported by this gateway.",
    "store": "store: true is not supported by this gateway: it does not let the provider keep conversations.",
    # LiteLLM passes neither to any provider: accepted, they would be dropped on the way.
    "moderation": "moderation is not supported by this gateway.",
    "prompt_cache_options": "prompt_cache_options is not supported by this gateway.",
}
# Providers whose API takes OpenAI's ``metadata`` (LiteLLM keeps its own ``metadata`` argument
# for logging, so ours travels in ``extra_body``).
_METADATA_PROVIDERS = frozenset({"openai", "azure"})
LOCAL_PROVIDER_PARAMS = frozenset(
    {"n", "seed", "stop", "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "response_format"}
    | {"user", "safety_identifier", "max_tokens", "max_completion_tokens"}
)
_TOKEN_ID = re.compile(r"[0-9]+")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The enums of openai-openapi 2.3.0 (ReasoningEffort, ServiceTier, Verbosity, the cache retention).
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
VERBOSITIES = ("low", "medium", "high")
PROMPT_CACHE_RETENTIONS = ("in_memory", "24h")
# Fields whose value the provider gets replaced by the caller's verified pseudonym (llm.py).
END_USER_FIELDS = ("user", "safety_identifier")


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, param=param)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    # JSON has one number type: 1.0 is an integer to JSON Schema (and to OpenAI's API).
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _ranged(low: float, high: float, integer: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if not (_integer(value) if integer else _number(value)):
            raise invalid(f"{name} must be {'an integer' if integer else 'a number'}.", name)
        if not low <= value <= high:
            raise invalid(f"{name} must be between {low:g} and {high:g}.", name)
        return int(value) if integer else value

    return check


def _boolean(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise invalid(f"{name} must be a boolean.", name)
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in choices:
            raise invalid(f"{name} must be one of {', '.join(choices)}.", name)
        return value

    return check


def _seed(name: str, value: Any) -> Any:
    if not _integer(value) or not -(2**63) <= value < 2**63:
        raise invalid("seed must be a 64-bit integer.", name)
    return int(value)


def _stop(name: str, value: Any) -> Any:
    stop = [value] if isinstance(value, str) else value
    if not (isinstance(stop, list) and 0 < len(stop) <= 4 and all(isinstance(s, str) and s for s in stop)):
        raise invalid("stop must be a string or an array of at most 4 non-empty strings.", name)
    return stop


def _logit_bias(name: str, value: Any) -> Any:
    if not isinstance(value, dict) or len(value) > 300:
        raise invalid("logit_bias must be an object of at most 300 token ids.", name)
    for token, bias in value.items():
        if not _TOKEN_ID.fullmatch(token) or not _number(bias) or not -100 <= bias <= 100:
            raise invalid("logit_bias maps token ids (digit strings) to numbers from -100 to 100.", name)
    return value


def _function_definition(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(f"{where}.function must be an object.", where)
    name = value.get("name")
    if not (isinstance(name, str) and _FUNCTION_NAME.fullmatch(name)):
        raise invalid(f"{where}.function.name must be 1-64 letters, digits, _ or -.", where)
    if "description" in value and not isinstance(value["description"], str):
        raise invalid(f"{where}.function.description must be a string.", where)
    if "parameters" in value and not isinstance(value["parameters"], dict):
        raise invalid(f"{where}.function.parameters must be a JSON Schema object.", where)
    if "strict" in value and value["strict"] is not None and not isinstance(value["strict"], bool):
        raise invalid(f"{where}.function.strict must be a boolean.", where)
    unknown = set(value) - {"name", "description", "parameters", "strict"}
    if unknown:
        raise invalid(f"Unrecognized argument in {where}.function: {sorted(unknown)[0]}.", where)


def _tools(name: str, value: Any) -> Any:
    if not isinstance(value, list) or not 0 < len(value) <= 128:
        raise invalid("tools must be an array of 1 to 128 tools.", name)
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"{where} must be {{'type': 'function', 'function': {{...}}}}.", where)
        _function_definition(where, tool.get("function"))
    return value


def _tool_choice(name: str, value: Any) -> Any:
    if value in ("none", "auto", "required"):
        return value
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("allowed_tools", "custom"):
        raise invalid(f"tool_choice of type {kind} is not supported by this gateway.", name)
    function = value.get("function") if isinstance(value, dict) else None
    if not (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(function, dict)
        and isinstance(function.get("name"), str)
    ):
        raise invalid(
            "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}.", name
        )
    return value


def _response_format(name: str, value: Any) -> Any:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return value
    if kind != "json_schema":
        raise invalid("response_format.type must be text, json_object or json_schema.", name)
    schema = value.get("json_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not schema["name"]:
        raise invalid("response_format.json_schema must be an object with a name.", name)
    if "schema" in schema and not isinstance(schema["schema"], dict):
        raise invalid("response_format.json_schema.schema must be a JSON Schema object.", name)
    if "strict" in schema and schema["strict"] is not None and not isinstance(schema["strict"], bool):
        raise invalid("response_format.json_schema.strict must be a boolean.", name)
    if "description" in schema and not isinstance(schema["description"], str):
        raise invalid("response_format.json_schema.description must be a string.", name)
    return value


def _modalities(name: str, value: Any) -> Any:
    if not (isinstance(value, list) and value and all(m in ("text", "audio") for m in value)):
        raise invalid("modalities must be an array of 'text' and 'audio'.", name)
    return value


def _audio(name: str, value: Any) -> Any:
    if not (isinstance(value, dict) and isinstance(value.get("voice"), str) and isinstance(value.get("format"), str)):
        raise invalid("audio must be an object with a voice and a format.", name)
    return value


def _prediction(name: str, value: Any) -> Any:
    content = value.get("content") if isinstance(value, dict) else None
    text_parts = isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    )
    if not (isinstance(value, dict) and value.get("type") == "content" and (isinstance(content, str) or text_parts)):
        raise invalid("prediction must be {'type': 'content', 'content': string or text parts}.", name)
    return value


def _metadata(name: str, value: Any) -> Any:
    if not isinstance(value, dict) or len(value) > 16:
        raise invalid("metadata must be an object of at most 16 pairs.", name)
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise invalid("metadata keys are strings of at most 64 characters, values of at most 512.", name)
    return value


def _text(limit: int) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > limit:
            raise invalid(f"{name} must be a string of at most {limit} characters.", name)
        return value

    return check


# Every optional field we pass on, with its check (which returns the value to forward).
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean,
    "response_format": _response_format,
    "n": _ranged(1, 128, integer=True),
    "seed": _seed,
    "stop": _stop,
    "temperature": _ranged(0, 2),
    "top_p": _ranged(0, 1),
    "presence_penalty": _ranged(-2, 2),
    "frequency_penalty": _ranged(-2, 2),
    "logprobs": _boolean,
    "top_logprobs": _ranged(0, 20, integer=True),
    "logit_bias": _logit_bias,
    "reasoning_effort": _one_of(REASONING_EFFORTS),
    "modalities": _modalities,
    "audio": _audio,
    "prediction": _prediction,
    "service_tier": _one_of(SERVICE_TIERS),
    "metadata": _metadata,
    "user": _text(256),
    "safety_identifier": _text(64),
    "prompt_cache_key": _text(1024),
    "prompt_cache_retention": _one_of(PROMPT_CACHE_RETENTIONS),
    "verbosity": _one_of(VERBOSITIES),
}


def _check_tool_choice_offered(fields: dict[str, Any]) -> None:
    """A named tool must be one of ``tools`` (OpenAI refuses it too; a provider might ignore it)."""
    choice = fields.get("tool_choice")
    if not isinstance(choice, dict):
        return
    name = choice["function"]["name"]
    if name not in {tool["function"]["name"] for tool in fields.get("tools", ())}:
        raise invalid(f"tool_choice names the function '{name[:64]}', which is not in tools.", "tool_choice")


@functools.lru_cache(maxsize=64)
def supported_fields(model: str) -> frozenset[str]:
    """The optional fields ``model`` takes, by LiteLLM's knowledge of its provider."""
    try:
        name, provider, _, _ = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - an unknown provider takes nothing optional
        return frozenset()
    if provider == "local":
        return LOCAL_PROVIDER_PARAMS
    params = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider) or []
    fields = set(params)
    if provider in _METADATA_PROVIDERS:
        fields.add("metadata")
    return frozenset(fields)


def check_fields(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The optional fields of ``body``, checked, as sent; raises the 400 that names a field."""
    for key in body:
        if key not in CHECKS and key not in BASE_FIELDS and key not in _REFUSED:
            raise invalid(f"Unrecognized request argument supplied: {key}", key)
    if body.get("store") not in (None, False):
        raise invalid(_REFUSED["store"], "store")
    for key in _REFUSED.keys() - {"store"}:
        if body.get(key) is not None:
            raise invalid(_REFUSED[key], key)
    fields = {key: check(key, body[key]) for key, check in CHECKS.items() if body.get(key) is not None}
    _check_tool_choice_offered(fields)
    if "top_logprobs" in fields and fields.get("logprobs") is not True:
        raise invalid("top_logprobs needs logprobs: true.", "top_logprobs")
    if "audio" in fields.get("modalities", ()) and "audio" not in fields:
        raise invalid("modalities with 'audio' needs the audio field.", "audio")
    supported = supported_fields(model)
    for key in fields:
        if key not in supported:
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                f"The model '{model}' does not support '{key}'.",
                param=key,
            )
    return fields
