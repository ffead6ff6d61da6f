"""Our error types and their one JSON shape, OpenAI's: ``{"error": {message, type, code, param}}``."""

from __future__ import annotations

import enum
from typing import Any, TypedDict

# The response header that carries the call's id (Lago's transaction_id), on errors too.
REQUEST_ID_HEADER = "x-request-id"


class ErrorCode(enum.Enum):
    """Each code carries its HTTP status and OpenAI's error ``type``."""

    INVALID_REQUEST = (400, "invalid_request_error", "invalid_request")
    INVALID_JSON = (400, "invalid_request_error", "invalid_json")
    UNAUTHENTICATED = (401, "authentication_error", "invalid_api_key")
    APP_CHECK_MISSING = (401, "authentication_error", "app_check_missing")
    APP_CHECK_INVALID = (401, "authentication_error", "app_check_invalid")
    BUDGET_EXCEEDED = (402, "insufficient_quota", "budget_exceeded")
    PROJECT_BUDGET_REACHED = (402, "insufficient_quota", "project_budget_reached")
    FORBIDDEN = (403, "permission_error", "forbidden")
    EMAIL_NOT_VERIFIED = (403, "permission_error", "email_not_verified")
    SIGN_IN_PROVIDER_REFUSED = (403, "permission_error", "sign_in_provider_not_allowed")
    NOT_FOUND = (404, "invalid_request_error", "not_found")
    MODEL_NOT_FOUND = (404, "invalid_request_error", "model_not_found")
    METHOD_NOT_ALLOWED = (405, "invalid_request_error", "method_not_allowed")
    BODY_TOO_LARGE = (413, "invalid_request_error", "request_too_large")
    RATE_LIMITED = (429, "rate_limit_error", "rate_limit_exceeded")
    # Our own limits, in OpenAI's shape for them: the type names what ran out.
    RATE_LIMIT_REQUESTS = (429, "requests", "rate_limit_exceeded")
    RATE_LIMIT_TOKENS = (429, "tokens", "rate_limit_exceeded")
    INTERNAL = (500, "server_error", "internal_error")
    UPSTREAM_ERROR = (502, "api_error", "upstream_error")
    UNAVAILABLE = (503, "api_error", "service_unavailable")
    UPSTREAM_TIMEOUT = (504, "timeout_error", "upstream_timeout")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def error_type(self) -> str:
        return self.value[1]

    @property
    def code(self) -> str:
        return self.value[2]


class ErrorBody(TypedDict):
    message: str
    type: str
    code: str
    param: str | None


class ApiError(Exception):
    """An error the client may see. ``message`` must never hold a secret, a token or a prompt."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.code.status

    def to_dict(self) -> dict[str, Any]:
        body: ErrorBody = {
            "message": self.message,
            "type": self.code.error_type,
            "code": self.code.code,
            "param": self.param,
        }
        return {"error": body}


def internal_error() -> ApiError:
    """The generic error for anything unexpected: nothing internal reaches the client."""
    return ApiError(ErrorCode.INTERNAL, "The server had an error while processing your request.")
