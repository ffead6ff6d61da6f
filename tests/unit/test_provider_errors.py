"""Provider failures as the client sees them (``llm.provider_error``, no server): each of
LiteLLM's exceptions becomes OpenAI's status for it, with our message, never the provider's text
(it may echo the key). These were end-to-end cases in test_chat_api.py; one (a provider 429) still
goes through the running server there."""

from __future__ import annotations

import logging

import httpx
import litellm
import pytest

from shared.billing_event import CallContext
from shared.errors import ErrorCode
from shared.llm import provider_error

CALL = CallContext("call-1", "2026-01-01T00:00:00Z", "uid-1", "uid-1", "openai/gpt-4o-mini")
KEY = "sk-provider-secret-do-not-echo"
PROVIDER = {"model": "gpt-4o-mini", "llm_provider": "openai"}
_REQUEST = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")


def answered(status: int) -> httpx.Response:
    return httpx.Response(status, request=_REQUEST)


# What LiteLLM raises for the provider's answers (the stand-in's #status:<n>, a timeout).
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (litellm.exceptions.RateLimitError(f"429 {KEY}", **PROVIDER), ErrorCode.RATE_LIMITED),
        (litellm.exceptions.InternalServerError(f"500 {KEY}", **PROVIDER), ErrorCode.UPSTREAM_ERROR),
        (litellm.exceptions.ServiceUnavailableError(f"503 {KEY}", **PROVIDER), ErrorCode.UNAVAILABLE),
        (litellm.exceptions.AuthenticationError(f"401 {KEY}", **PROVIDER), ErrorCode.UPSTREAM_ERROR),
        (litellm.exceptions.BadRequestError(f"400 {KEY}", **PROVIDER), ErrorCode.INVALID_REQUEST),
        (litellm.exceptions.Timeout(f"timed out {KEY}", **PROVIDER), ErrorCode.UPSTREAM_TIMEOUT),
        (
            litellm.exceptions.ContextWindowExceededError(f"too long {KEY}", **PROVIDER),
            ErrorCode.INVALID_REQUEST,
        ),
        (
            litellm.exceptions.ContentPolicyViolationError(f"refused {KEY}", **PROVIDER),
            ErrorCode.INVALID_REQUEST,
        ),
        (
            litellm.exceptions.PermissionDeniedError(f"403 {KEY}", response=answered(403), **PROVIDER),
            ErrorCode.UPSTREAM_ERROR,
        ),
        (litellm.exceptions.NotFoundError(f"404 {KEY}", **PROVIDER), ErrorCode.UPSTREAM_ERROR),
        (
            litellm.exceptions.UnprocessableEntityError(f"422 {KEY}", response=answered(422), **PROVIDER),
            ErrorCode.INVALID_REQUEST,
        ),
        (litellm.exceptions.APIConnectionError(f"refused {KEY}", **PROVIDER), ErrorCode.UPSTREAM_ERROR),
        (litellm.exceptions.APIError(418, f"teapot {KEY}", **PROVIDER), ErrorCode.UPSTREAM_ERROR),
        (RuntimeError(f"anything else {KEY}"), ErrorCode.UPSTREAM_ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.code,
)
def test_provider_errors_map_to_openai_statuses(error: BaseException, code: ErrorCode) -> None:
    mapped = provider_error(error, CALL)
    assert mapped.code is code
    assert KEY not in mapped.message and KEY not in str(mapped.to_dict())


def test_a_failed_call_is_logged_by_class_and_uid_hash_never_the_uid_or_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        provider_error(litellm.exceptions.RateLimitError(f"429 {KEY}", **PROVIDER), CALL)
    [record] = [r for r in caplog.records if r.getMessage() == "llm_call_failed"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["error_class"] == "RateLimitError" and fields["call_id"] == "call-1"
    assert "uid-1" not in str(fields) and KEY not in str(fields)
