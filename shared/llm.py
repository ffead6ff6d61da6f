"""LiteLLM calls: one place that calls the model and turns provider failures into our errors."""

from __future__ import annotations

import hashlib
import importlib
from typing import Any

import litellm
import openai

from .billing_event import CallContext
from .chat_request import ChatRequest
from .errors import ApiError, ErrorCode
from .logs import log, uid_hash

# What LiteLLM imports on its first call rather than at ``import litellm`` (found by diffing
# ``sys.modules`` around a server's first request): ~0.2 s of CPU, two thirds of it the proxy's
# pydantic types that ``completion`` reaches through its file-id handling. Imported at cold start
# instead, in the master before the fork and with the collector paused (functions/main.py), so
# the first request does not pay for them. Imports only: no threads, sockets or clients.
_FIRST_CALL_MODULES = (
    "litellm.proxy.openai_files_endpoints.common_utils",
    "litellm.proxy.spend_tracking.savings",
    "litellm._service_logger",
    "litellm.llms.openai.chat.gpt_audio_transformation",
    "litellm.llms.github_copilot.per_user_auth",
    "litellm.llms.edenai.chat.transformation",
    "litellm.llms.fal_ai.chat",
)


def preload() -> None:
    """Import what LiteLLM's first call would; a name a newer LiteLLM lacks is logged, not fatal."""
    for name in _FIRST_CALL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            log("INFO", "litellm_preload_missing", module=name)


# Most specific first: litellm.Timeout is an APIConnectionError, BadRequest subclasses abound.
_ERROR_MAP: tuple[tuple[type[BaseException], ErrorCode, str], ...] = (
    (openai.APITimeoutError, ErrorCode.UPSTREAM_TIMEOUT, "The model provider did not answer in time."),
    (
        litellm.exceptions.ContextWindowExceededError,
        ErrorCode.INVALID_REQUEST,
        "The messages exceed the model's context window.",
    ),
    (
        litellm.exceptions.ContentPolicyViolationError,
        ErrorCode.INVALID_REQUEST,
        "The provider refused the request (content policy).",
    ),
    (openai.RateLimitError, ErrorCode.RATE_LIMITED, "The model provider is rate limiting requests; retry shortly."),
    (
        litellm.exceptions.ServiceUnavailableError,
        ErrorCode.UNAVAILABLE,
        "The model provider is unavailable; retry shortly.",
    ),
    (openai.BadRequestError, ErrorCode.INVALID_REQUEST, "The model provider rejected the request as invalid."),
    (openai.UnprocessableEntityError, ErrorCode.INVALID_REQUEST, "The model provider rejected the request as invalid."),
    (openai.AuthenticationError, ErrorCode.UPSTREAM_ERROR, "The model provider rejected this service's credentials."),
    (openai.PermissionDeniedError, ErrorCode.UPSTREAM_ERROR, "The model provider denied access to the model."),
    (openai.NotFoundError, ErrorCode.UPSTREAM_ERROR, "The model provider does not know the configured model."),
    (openai.APIConnectionError, ErrorCode.UPSTREAM_ERROR, "Could not reach the model provider."),
    (openai.APIError, ErrorCode.UPSTREAM_ERROR, "The model provider returned an error."),
)


def provider_error(error: BaseException, call: CallContext) -> ApiError:
    """Log the failed call and return the error the client sees (no provider text: it may echo keys)."""
    log(
        "WARNING",
        "llm_call_failed",
        model=call.model,
        error_class=type(error).__name__,
        uid_hash=uid_hash(call.uid),
        call_id=call.call_id,
    )
    for kind, code, message in _ERROR_MAP:
        if isinstance(error, kind):
            return ApiError(code, message)
    return ApiError(ErrorCode.UPSTREAM_ERROR, "The model call failed.")


def complete(request: ChatRequest, call: CallContext, timeout_s: float) -> Any:
    """A whole completion (``litellm.ModelResponse``); provider failures become ``ApiError``."""
    try:
        return litellm.completion(**_arguments(request, call, timeout_s))
    except Exception as error:  # noqa: BLE001 - every provider failure is mapped, none escapes raw
        raise provider_error(error, call) from None


def open_stream(request: ChatRequest, call: CallContext, timeout_s: float) -> Any:
    """A started stream (``litellm.CustomStreamWrapper``) that ends with a usage chunk."""
    try:
        # Always ask for the usage chunk: it is what the call is billed from.
        return litellm.completion(
            **_arguments(request, call, timeout_s), stream=True, stream_options={"include_usage": True}
        )
    except Exception as error:  # noqa: BLE001
        raise provider_error(error, call) from None


def provider_user_id(uid: str) -> str:
    """What the provider gets as ``user`` (and ``safety_identifier``): a stable digest of the verified uid, not the sent value."""
    return "uid-" + hashlib.sha256(f"chat-end-user:{uid}".encode()).hexdigest()[:32]


def _arguments(request: ChatRequest, call: CallContext, timeout_s: float) -> dict[str, Any]:
    arguments = {
        "model": request.model,
        "messages": request.messages,
        "litellm_call_id": call.call_id,
        "timeout": timeout_s,
        "num_retries": 0,
        **request.params,
    }
    for name in request.end_user:  # user, safety_identifier: the verified pseudonym, never the sent value
        arguments[name] = provider_user_id(call.uid)
    return arguments
