"""Firebase App Check: does the call come from the operator's own app?

The page sends an App Check token in ``X-Firebase-AppCheck``. firebase-admin verifies it as an
RS256 JWT against Firebase's JWKS (cached six hours): header ``typ: JWT`` with a ``kid``, issuer
``https://firebaseappcheck.googleapis.com/<project number>``, audience including
``projects/<project id>``, not expired. ``CHAT_APP_CHECK`` picks what a failure does:

- ``off``: the header is not read;
- ``monitor``: failures are logged (``app_check_missing``, ``app_check_invalid``) and served,
  to see who would be refused before enforcing;
- ``enforce``: a missing or invalid token is a 401 that says which.

Replay protection: for the models in ``CHAT_APP_CHECK_CONSUME_MODELS`` the token is also
consumed through App Check's ``verifyAppCheckToken`` API (firebase-admin's ``consume=True``), so
a token seen before is refused; the page sends a limited-use token for those models. When the
keys or that API cannot be reached the token cannot be judged: enforce answers 503, monitor logs
``app_check_unavailable`` and serves. Logs name error classes only, never a token.
"""

from __future__ import annotations

from collections.abc import Callable

import firebase_admin
import jwt
from firebase_admin import app_check, exceptions

from .errors import ApiError, ErrorCode
from .logs import log
from .settings import AppCheckSettings

APP_CHECK_HEADER = "X-Firebase-AppCheck"
_MISSING = f"Missing App Check token: this API answers the operator's app only (send {APP_CHECK_HEADER})."
_INVALID = "Invalid or expired App Check token: reload the app and try again."
_REPLAYED = "This App Check token was already used: this model needs a fresh limited-use token per call."
_UNAVAILABLE = "Cannot verify App Check tokens right now; try again."


class AppCheckGate:
    """Applies ``CHAT_APP_CHECK`` to a request's App Check header. One per instance."""

    def __init__(self, settings: AppCheckSettings, firebase_app: Callable[[], firebase_admin.App]) -> None:
        self._settings = settings
        self._firebase_app = firebase_app

    def check(self, header: str | None, model: str | None = None) -> None:
        """Let the call through, or raise the 401/503 that ``enforce`` asks for."""
        if not self._settings.checks:
            return
        try:
            self._verify(header, consume=model is not None and model in self._settings.consume_models)
        except ApiError:
            if self._settings.mode == "enforce":
                raise

    def _verify(self, header: str | None, *, consume: bool) -> None:
        token = (header or "").strip()
        if not token:
            log("INFO", "app_check_missing", mode=self._settings.mode)
            raise ApiError(ErrorCode.APP_CHECK_MISSING, _MISSING)
        app = self._firebase_app()
        if not app.project_id:
            log("ERROR", "app_check_unavailable", reason="no project id: set GOOGLE_CLOUD_PROJECT")
            raise ApiError(ErrorCode.UNAVAILABLE, _UNAVAILABLE)
        try:
            claims = app_check.verify_token(token, app=app, consume=consume)
        except jwt.PyJWKClientConnectionError:
            log("ERROR", "app_check_unavailable", reason="jwks_unreachable", mode=self._settings.mode)
            raise ApiError(ErrorCode.UNAVAILABLE, _UNAVAILABLE) from None
        except exceptions.FirebaseError as error:
            # Only the consume call talks to the App Check API.
            log("ERROR", "app_check_unavailable", reason="consume_failed", error_class=type(error).__name__)
            raise ApiError(ErrorCode.UNAVAILABLE, _UNAVAILABLE) from None
        except (ValueError, jwt.PyJWKClientError) as error:
            # The jwt cause tells expired / signature / audience apart; an unknown kid is a PyJWKClientError.
            cause = error.__cause__ or error
            log("INFO", "app_check_invalid", mode=self._settings.mode, error_class=type(cause).__name__)
            raise ApiError(ErrorCode.APP_CHECK_INVALID, _INVALID) from None
        if claims.get("already_consumed"):
            log("INFO", "app_check_invalid", mode=self._settings.mode, error_class="AlreadyConsumed")
            raise ApiError(ErrorCode.APP_CHECK_INVALID, _REPLAYED)
