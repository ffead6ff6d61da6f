"""Google's securetoken certificate endpoint, serving certificates of our own, and a signer
that mints RS256 ID tokens with them: the production verification path, offline."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .http_server import Request, StandIn, StandInServer


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


class FakeGoogleCerts(StandIn):
    """Serves ``{kid: PEM}`` like https://www.googleapis.com/robot/v1/metadata/x509/securetoken@..."""

    KID = "test-kid-1"

    def __init__(self) -> None:
        self.key, self.cert_pem = _key_and_cert()
        self.other_key, _ = _key_and_cert()  # a key Google never published
        self.server = StandInServer([("GET", r"/certs", self._certs)])

    @property
    def url(self) -> str:
        return f"{self.server.url}/certs"

    def _certs(self, request: Request) -> None:
        request.send_json(200, {self.KID: self.cert_pem}, {"Cache-Control": "public, max-age=3600"})

    def service_account_key(self, project_id: str, email: str = "") -> dict[str, str]:
        """A service account key file's content (Application Default Credentials), signed with our
        key; its token endpoint is a closed local port, so nothing leaves this machine."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": self.KID,
            "private_key": pem.decode(),
            "client_email": email or f"chat-functions@{project_id}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:9/token",
        }

    def mint(
        self,
        project_id: str,
        uid: str,
        *,
        key: Any = None,
        kid: str | None = KID,
        lifetime_s: int = 3600,
        issued_ago_s: int = 10,
        **overrides: Any,
    ) -> str:
        """An ID token as Firebase Auth issues it; ``overrides`` replace claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{project_id}",
            "aud": project_id,
            "auth_time": now - issued_ago_s,
            "user_id": uid,
            "sub": uid,
            "iat": now - issued_ago_s,
            "exp": now - issued_ago_s + lifetime_s,
            "firebase": {"identities": {}, "sign_in_provider": "custom"},
        }
        claims.update(overrides)
        headers = {"kid": kid} if kid else {}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers=headers)


def unsigned_token(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token (what an attacker would try, and what the Auth emulator issues)."""
    import base64

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
