"""Sign-in policy: which verified Firebase identities may chat, and how much a new account may spend.

A verified ID token says who signed in and how, not whether that identity deserves a budget: a
script can create accounts (anonymous ones, or with unverified emails) faster than anyone can
look. So, from the token's own claims:

- ``CHAT_REQUIRE_VERIFIED_EMAIL``: ``email_verified`` must be true (403 ``email_not_verified``);
- ``CHAT_SIGN_IN_PROVIDERS``: ``firebase.sign_in_provider`` must be listed; ``anonymous`` is
  refused by default deployed (403 ``sign_in_provider_not_allowed``);
- ``CHAT_NEW_ACCOUNT_BUDGET_CENTS``: while an account is younger than ``CHAT_NEW_ACCOUNT_DAYS``
  its budget limit is at most that.

An ID token carries no account creation time: ``auth_time`` is the last sign-in with a
credential, ``iat`` the token's minting. But ``auth_time`` is never earlier than the creation, so
an ``auth_time`` older than the new-account period proves the account old with no call at all;
otherwise the creation time is read once per uid per instance from Firebase Auth
(``get_user().user_metadata.creation_timestamp``, immutable, so cached). When that read fails the
account counts as new: the smaller budget is the safe side.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import firebase_admin
from firebase_admin import auth as firebase_auth
from firebase_admin import exceptions

from .auth import Caller
from .errors import ApiError, ErrorCode
from .logs import log, uid_hash
from .settings import ANONYMOUS_PROVIDER, SignInSettings

_DAY_S = 86400.0
_CACHE_SIZE = 50_000  # uids whose creation time is kept: ~100 bytes each


def sign_in_provider(caller: Caller) -> str | None:
    """``firebase.sign_in_provider`` of the token (``password``, ``google.com``, ``anonymous``...)."""
    firebase = caller.claims.get("firebase")
    provider = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
    return provider if isinstance(provider, str) else None


class SignInPolicy:
    """Applies the sign-in settings to verified callers. One per instance."""

    def __init__(
        self,
        settings: SignInSettings,
        firebase_app: Callable[[], firebase_admin.App],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._firebase_app = firebase_app
        self._clock = clock
        self._created: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, caller: Caller) -> None:
        """Let the caller chat, or raise a 403 whose message the page shows as is."""
        provider = sign_in_provider(caller)
        settings = self._settings
        if provider == ANONYMOUS_PROVIDER and not settings.anonymous_allowed:
            log("INFO", "sign_in_refused", reason="anonymous", uid_hash=uid_hash(caller.uid))
            raise ApiError(
                ErrorCode.SIGN_IN_PROVIDER_REFUSED,
                "Guest (anonymous) sign-ins cannot chat here: create an account or sign in.",
            )
        if settings.providers is not None and provider not in settings.providers:
            log("INFO", "sign_in_refused", reason="provider", provider=provider, uid_hash=uid_hash(caller.uid))
            raise ApiError(
                ErrorCode.SIGN_IN_PROVIDER_REFUSED,
                f"This sign-in method ({provider or 'none'}) cannot chat here; "
                f"sign in with one of: {', '.join(settings.providers)}.",
            )
        if settings.require_verified_email and caller.claims.get("email_verified") is not True:
            log("INFO", "sign_in_refused", reason="email_not_verified", uid_hash=uid_hash(caller.uid))
            raise ApiError(
                ErrorCode.EMAIL_NOT_VERIFIED,
                "Verify your email address first: open the link sent to you, then sign in again.",
            )

    def budget_cap_cents(self, caller: Caller) -> int | None:
        """The new-account limit when it applies to this caller, else None."""
        cap = self._settings.new_account_budget_cents
        if cap is None:
            return None
        return cap if self._is_new(caller) else None

    def _is_new(self, caller: Caller) -> bool:
        period_s = self._settings.new_account_days * _DAY_S
        oldest_new = self._clock() - period_s
        auth_time = caller.claims.get("auth_time")
        if isinstance(auth_time, int | float) and auth_time < oldest_new:
            return False
        created = self._created_at(caller.uid)
        return created is None or created >= oldest_new

    def _created_at(self, uid: str) -> float | None:
        with self._lock:
            cached = self._created.get(uid)
            if cached is not None:
                self._created.move_to_end(uid)
                return cached
        try:
            user = firebase_auth.get_user(uid, app=self._firebase_app())
        except (ValueError, exceptions.FirebaseError) as error:
            log("WARNING", "account_age_unavailable", error_class=type(error).__name__, uid_hash=uid_hash(uid))
            return None
        millis = user.user_metadata.creation_timestamp
        if not isinstance(millis, int):
            return None
        created = millis / 1000
        with self._lock:
            self._created[uid] = created
            if len(self._created) > _CACHE_SIZE:
                self._created.popitem(last=False)
        return created
