"""Firebase ID tokens: who is calling. The uid comes from the verified token, never the body."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import firebase_admin
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials as firebase_credentials
from google.auth.credentials import AnonymousCredentials

from .errors import ApiError, ErrorCode
from .logs import log

_BEARER = re.compile(r"Bearer[ \t]+([A-Za-z0-9\-_.=+/]+)\s*$", re.IGNORECASE)
ANONYMOUS_UID = "anonymous"
_API_TIMEOUT_S = 10


@dataclass(frozen=True)
class Caller:
    """The verified caller: its uid and the token's claims (custom claims included)."""

    uid: str
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def email(self) -> str | None:
        value = self.claims.get("email")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        value = self.claims.get("name")
        return value if isinstance(value, str) else None


class _AnonymousCredential(firebase_credentials.Base):  # type: ignore[misc]  # firebase-admin is untyped
    """Used when the instance has no Google credentials (local runs): ID tokens verify with
    public certificates alone; only revocation checks need real credentials."""

    def get_credential(self) -> AnonymousCredentials:
        return AnonymousCredentials()


def _credential(deployed: bool) -> firebase_credentials.Base:
    # Off Google Cloud, looking for default credentials would probe the metadata server
    # (seconds of timeouts); only an explicit key file counts there.
    if deployed or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return firebase_credentials.ApplicationDefault()
    log("INFO", "firebase_credentials_anonymous", reason="not on Google Cloud and no key file")
    return _AnonymousCredential()


class TokenVerifier:
    """Verifies Firebase ID tokens with firebase-admin. One per instance (it owns the app)."""

    def __init__(self, project_id: str, *, check_revoked: bool, allow_anonymous: bool, deployed: bool) -> None:
        self._project_id = project_id
        self._deployed = deployed
        self._check_revoked = check_revoked
        self._allow_anonymous = allow_anonymous
        self._app: firebase_admin.App | None = None
        self._lock = threading.Lock()

    def firebase_app(self) -> firebase_admin.App:
        """The instance's firebase-admin app (also App Check's and the sign-in policy's)."""
        # Lazy, under a lock: initialize_app raises when called twice, and threads race here.
        if self._app is None:
            with self._lock:
                if self._app is None:
                    # Bounded waits for the Auth and App Check APIs (firebase-admin's default is 120 s).
                    options: dict[str, object] = {"httpTimeout": _API_TIMEOUT_S}
                    if self._project_id:
                        options["projectId"] = self._project_id
                    self._app = firebase_admin.initialize_app(_credential(self._deployed), options, name="chat-auth")
        return self._app

    def verify_authorization(self, header: str | None) -> Caller:
        """The caller named by an ``Authorization: Bearer <ID token>`` header, or a 401."""
        if not header:
            if self._allow_anonymous:
                return Caller(ANONYMOUS_UID)
            log("INFO", "auth_missing")
            raise ApiError(
                ErrorCode.UNAUTHENTICATED, "Missing Authorization header: send 'Bearer <Firebase ID token>'."
            )
        match = _BEARER.match(header.strip())
        if not match:
            log("INFO", "auth_malformed")
            raise ApiError(
                ErrorCode.UNAUTHENTICATED, "Malformed Authorization header: send 'Bearer <Firebase ID token>'."
            )
        return self.verify_id_token(match.group(1))

    def verify_id_token(self, token: str) -> Caller:
        try:
            claims = firebase_auth.verify_id_token(token, app=self.firebase_app(), check_revoked=self._check_revoked)
        except firebase_auth.CertificateFetchError as error:
            log("ERROR", "auth_certificates_unavailable", error_class=type(error).__name__)
            raise ApiError(ErrorCode.UNAVAILABLE, "Cannot verify ID tokens right now; try again.") from None
        except (ValueError, firebase_admin.exceptions.FirebaseError) as error:
            # Revoked, disabled, expired, forged, wrong project: all one 401; the class tells them apart in logs.
            log("INFO", "auth_invalid", error_class=type(error).__name__)
            raise ApiError(ErrorCode.UNAUTHENTICATED, "Invalid or expired Firebase ID token.") from None
        uid = claims.get("uid") or claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise ApiError(ErrorCode.UNAUTHENTICATED, "Invalid or expired Firebase ID token.")
        return Caller(uid, claims)
