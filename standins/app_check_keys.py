"""Firebase App Check's public keys and its ``verifyAppCheckToken`` API, with keys of our own,
and a signer that mints App Check tokens as Firebase does: the production verification path,
offline (firebase-admin is pointed here by ``tests/support/cert_override``)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .http_server import Request, StandIn, StandInServer

PROJECT_NUMBER = "123456789012"
APP_ID = f"1:{PROJECT_NUMBER}:web:0123456789abcdef"


class FakeAppCheck(StandIn):
    """``GET /v1/jwks`` (a JWK set, like https://firebaseappcheck.googleapis.com/v1/jwks) and
    ``POST /v1beta/projects/{id}:verifyAppCheckToken`` (replay protection: ``alreadyConsumed``)."""

    KID = "app-check-test-kid"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_fetches = 0
        self.consumed: set[str] = set()
        self._lock = threading.Lock()
        self.server = StandInServer(
            [
                ("GET", r"/v1/jwks", self._jwks),
                ("POST", r"/v1beta/projects/(?P<project>[^/:]+):verifyAppCheckToken", self._verify),
            ]
        )

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/v1/jwks"

    @property
    def verify_url_format(self) -> str:
        """firebase-admin's ``_VERIFY_URL_FORMAT``, here."""
        return self.url + "/v1beta/projects/{project_id}:verifyAppCheckToken"

    def _jwks(self, request: Request) -> None:
        with self._lock:
            self.jwks_fetches += 1
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.KID, "alg": "RS256", "use": "sig"})
        request.send_json(200, {"keys": [jwk]}, {"Cache-Control": "public, max-age=21600"})

    def _verify(self, request: Request) -> None:
        body = request.json() or {}
        token = str(body.get("app_check_token") or body.get("appCheckToken") or "")  # proto3 JSON takes both
        try:
            jwt.decode(token, self.key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
        except jwt.InvalidTokenError:
            request.send_json(
                400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "invalid App Check token"}}
            )
            return
        with self._lock:
            already = token in self.consumed
            self.consumed.add(token)
        request.send_json(200, {"alreadyConsumed": True} if already else {})

    def mint(
        self,
        project_id: str,
        *,
        key: Any = None,
        kid: str | None = KID,
        typ: str | None = "JWT",
        lifetime_s: int = 3600,
        issued_ago_s: int = 10,
        **overrides: Any,
    ) -> str:
        """An App Check token as Firebase issues it; ``overrides`` replace claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
            "aud": [f"projects/{PROJECT_NUMBER}", f"projects/{project_id}"],
            "sub": APP_ID,
            "iat": now - issued_ago_s,
            "exp": now - issued_ago_s + lifetime_s,
            "jti": uuid.uuid4().hex,  # two tokens minted in one second must differ, as Firebase's do
        }
        claims.update(overrides)
        headers: dict[str, Any] = {"typ": typ}  # PyJWT drops a None typ (and adds "JWT" when unset)
        if kid:
            headers["kid"] = kid
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers=headers)
