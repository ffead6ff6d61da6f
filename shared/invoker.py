"""Who may invoke a private function (``replay_billing``): a Google-signed OIDC token of one
service account, checked in code so that a misconfigured IAM binding is not the only wall.

Cloud Scheduler sends ``Authorization: Bearer <OIDC token>`` minted for the replay function's
own runtime service account, with the function's URL as the audience (``deploy.sh`` sets both
up). The token is verified with ``google.oauth2.id_token.verify_oauth2_token``: signature
against Google's published certificates, expiry, issuer ``accounts.google.com`` and audience
``REPLAY_AUDIENCE``; then its ``email`` must be ``REPLAY_INVOKER_EMAIL``, verified.
"""

from __future__ import annotations

import re

from .errors import ApiError, ErrorCode
from .logs import log
from .settings import Settings

_BEARER = re.compile(r"Bearer[ \t]+([A-Za-z0-9\-_.=]+)\s*$", re.IGNORECASE)


def verify_invoker(header: str | None, settings: Settings) -> None:
    """Raise 401/403 unless the caller is the one allowed service account (503 if unset when deployed)."""
    audience, email = settings.replay_audience, settings.replay_invoker_email
    if not (audience and email):
        if settings.deployed:
            log("ERROR", "replay_invoker_unset", reason="REPLAY_AUDIENCE and REPLAY_INVOKER_EMAIL are required")
            raise ApiError(ErrorCode.UNAVAILABLE, "The replay is misconfigured; its operators have been told.")
        return  # local runs and tests: no Google tokens exist here
    match = _BEARER.match(header or "")
    if match is None:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "An OIDC token is required.")
    claims = _verified_claims(match.group(1), audience)
    if claims.get("email") != email or claims.get("email_verified") is not True:
        log("WARNING", "replay_invoker_refused", reason="email")  # not the email itself: no identities in logs
        raise ApiError(ErrorCode.FORBIDDEN, "This caller may not run the replay.")


def _verified_claims(token: str, audience: str) -> dict[str, object]:
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import id_token

    try:
        request = google.auth.transport.requests.Request()
        claims = id_token.verify_oauth2_token(token, request, audience)  # type: ignore[no-untyped-call]
    except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
        # ValueError: bad signature, expired, wrong audience, malformed; GoogleAuthError: wrong issuer.
        transport = isinstance(error, google.auth.exceptions.TransportError)
        log("WARNING", "replay_invoker_refused", reason="certificates" if transport else "token")
        if transport:
            raise ApiError(ErrorCode.UNAVAILABLE, "Google's certificates could not be fetched; retry.") from None
        raise ApiError(ErrorCode.UNAUTHENTICATED, "The OIDC token is not valid for this function.") from None
    return dict(claims)
