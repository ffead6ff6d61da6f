"""Google's OAuth 2.0 token endpoint for service accounts, with accounts and keys of our own.

The flow google-auth runs for a service-account credential file (``google.oauth2.service_account``,
https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests):
``POST /token`` with the form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
``assertion``, a JWT signed RS256 with the account's private key (header ``kid`` = the key id;
claims ``iss`` = the account's email, ``scope``, ``aud`` = ``https://oauth2.googleapis.com/token``
whatever the credential's ``token_uri`` (Google's docs: "always" that value), ``iat``, ``exp`` at
most an hour later). The signature is checked with the account's public key; the answer is
``{"access_token", "expires_in": 3599, "token_type": "Bearer"}``, errors are
``{"error": "invalid_grant" | "invalid_scope" | "unsupported_grant_type", "error_description"}``.

``service_account(project)`` makes an account and returns its credential file's content (its
``token_uri`` is this server). ``identity(token)`` says which account and scopes an access token
was issued for, so an API stand-in accepts only tokens issued here.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .http_server import Request, StandIn, StandInServer

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
ASSERTION_AUDIENCE = "https://oauth2.googleapis.com/token"
TOKEN_LIFETIME_S = 3599
MAX_ASSERTION_LIFETIME_S = 3600


@dataclass(frozen=True)
class Identity:
    """Whom an access token stands for."""

    email: str
    project_id: str
    scopes: tuple[str, ...]
    expires_at: float


class FakeGoogleOAuth(StandIn):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, str, rsa.RSAPublicKey]] = {}  # kid -> (email, project, key)
        self._tokens: dict[str, Identity] = {}
        self.grants = 0  # access tokens issued
        self.refused: list[str] = []  # why assertions were refused
        self.server = StandInServer([("POST", r"/token", self._token)])

    @property
    def token_uri(self) -> str:
        return f"{self.server.url}/token"

    def service_account(self, project_id: str, name: str = "chat-fn") -> dict[str, str]:
        """A new service account of ``project_id``: its credential file's content."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = secrets.token_hex(20)
        email = f"{name}@{project_id}.iam.gserviceaccount.com"
        with self._lock:
            self._keys[kid] = (email, project_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": kid,
            "private_key": pem.decode(),
            "client_email": email,
            "client_id": str(int(kid[:12], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def identity(self, access_token: str) -> Identity | None:
        """The identity an unexpired access token of ours stands for, else None."""
        with self._lock:
            identity = self._tokens.get(access_token)
        if identity is None or identity.expires_at <= time.time():
            return None
        return identity

    def _token(self, request: Request) -> None:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return self._refuse(request, "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        assertion = form.get("assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid")
        except jwt.InvalidTokenError:
            return self._refuse(request, "invalid_grant", "Invalid JWT: not a JWT.")
        with self._lock:
            known = self._keys.get(kid or "")
        if known is None:
            return self._refuse(request, "invalid_grant", "Invalid JWT Signature.")
        email, project_id, public_key = known
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=ASSERTION_AUDIENCE,
                issuer=email,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidSignatureError:
            return self._refuse(request, "invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidTokenError as error:
            return self._refuse(request, "invalid_grant", f"Invalid JWT: {type(error).__name__}")
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME_S:
            return self._refuse(request, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)")
        scopes = tuple(str(claims.get("scope", "")).split())
        if not scopes:
            return self._refuse(request, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.test-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = Identity(email, project_id, scopes, time.time() + TOKEN_LIFETIME_S)
            self.grants += 1
        request.send_json(200, {"access_token": token, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"})
        return None

    def _refuse(self, request: Request, error: str, description: str) -> None:
        with self._lock:
            self.refused.append(description)
        request.send_json(400, {"error": error, "error_description": description})
