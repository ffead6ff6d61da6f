"""Per-payer (and, in team mode, per-uid) rate limits shared by every instance.

``CHAT_RATE_LIMIT_RPM`` (requests per minute), ``CHAT_RATE_LIMIT_TPM`` (tokens per minute,
counted as OpenAI does before a call: prompt tokens plus ``max_tokens``) and
``CHAT_MAX_CONCURRENT`` (requests in flight). Each is off when unset.

The same lease idea as the spend ledger (``ledger.py``), on Firestore documents in
``rate_limits``:
- Per minute: one document per key and UTC minute counts what was *granted* to instances. An
  instance takes a slice of the minute's allowance in one transaction (sized from its recent
  rate, at most half of what is left unless the request needs more) and spends it in memory,
  so a busy payer costs about one write per instance per second, not one per request. The sum
  of the slices never passes the limit, so the requests let through in a minute never do
  either. Tolerance: the windows are fixed minutes, so a burst at the end of one minute and the
  start of the next can pass up to twice the limit within 60 s; slices an instance did not use
  are not returned (the limit errs on the strict side by at most one slice per instance).
- Concurrency: one document per key holds each instance's slots with an expiry. An instance
  takes a slot in a transaction when all of its own are busy, keeps idle slots while it is
  busy for that key (no write per request), and returns them all when its last request for the
  key ends. Tolerance: a crashed instance's slots count until they expire (``SLOT_TTL_S``).

Over a limit: 429 in OpenAI's shape (``type`` ``requests`` or ``tokens``, ``code``
``rate_limit_exceeded``) with ``Retry-After``; every chat answer carries OpenAI's
``x-ratelimit-*`` headers so official clients' retry logic works unchanged.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ApiError, ErrorCode
from .firestore_db import FirestoreDb

if TYPE_CHECKING:
    from google.cloud import firestore

COLLECTION = "rate_limits"
WINDOW_S = 60
SLOT_TTL_S = 900.0  # longer than any call: a live instance's slot must not expire under it
LEASE_S = 1.0  # a per-minute slice should last about this long at the recent rate


def take_slice(limit: int, granted: int, need: int, want: int) -> int:
    """Of what is left in the window, ``need`` or more (up to ``want``, at most half of what is
    left beyond ``need``); 0 when ``need`` does not fit."""
    left = limit - granted
    if need > left:
        return 0
    return min(left, max(need, min(want, left // 2)))


def take_slot(slots: dict[str, tuple[int, float]], me: str, limit: int, now: float) -> bool:
    """Add one slot for ``me`` if the live slots leave room (expired ones are dropped first)."""
    for holder, (_, expires_at) in list(slots.items()):
        if expires_at <= now and holder != me:
            del slots[holder]
    if sum(n for n, _ in slots.values()) >= limit:
        return False
    count = slots.get(me, (0, 0.0))[0]
    slots[me] = (count + 1, now + SLOT_TTL_S)
    return True


class RateStore:
    """The ``rate_limits`` documents, in the instance's one Firestore client."""

    def __init__(self, db: FirestoreDb, *, timeout_s: float = 5.0) -> None:
        self._database = db
        self._timeout_s = timeout_s
        self.writes = 0

    def _db(self) -> firestore.Client:
        return self._database.client()

    def _transact(self, doc_id: str, change: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Any]]) -> Any:
        result = self._database.transact(COLLECTION, doc_id, lambda data: change(data or {}), timeout_s=self._timeout_s)
        self.writes += 1
        return result

    def take_window(self, doc_id: str, limit: int, need: int, want: int, expires_at: float) -> tuple[int, int]:
        """``(granted now, granted in the window in all)``."""

        def change(data: dict[str, Any]) -> tuple[dict[str, Any] | None, tuple[int, int]]:
            before = int(data.get("granted", 0))
            got = take_slice(limit, before, need, want)
            if got == 0:
                return None, (0, before)
            return {"granted": before + got, "limit": limit, "expires_at": expires_at}, (got, before + got)

        granted: tuple[int, int] = self._transact(doc_id, change)
        return granted

    def change_slots(self, doc_id: str, me: str, limit: int, now: float, *, take: bool) -> bool:
        def change(data: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
            raw = data.get("slots") or {}
            slots = {k: (int(v["n"]), float(v["expires_at"])) for k, v in raw.items()}
            if take:
                ok = take_slot(slots, me, limit, now)
                if not ok:
                    return None, False
            else:
                slots.pop(me, None)
                ok = True
            return {"slots": {k: {"n": n, "expires_at": e} for k, (n, e) in slots.items()}}, ok

        taken: bool = self._transact(doc_id, change)
        return taken


class LocalRateStore(RateStore):
    """The same counts in this process's memory: for local runs without a Firestore emulator."""

    def __init__(self) -> None:
        super().__init__(FirestoreDb(None))  # never asked for a client
        self._docs: dict[str, dict[str, Any]] = {}
        self._mutex = threading.Lock()

    def _transact(self, doc_id: str, change: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Any]]) -> Any:
        with self._mutex:
            new, result = change(dict(self._docs.get(doc_id, {})))
            if new is not None:
                self._docs[doc_id] = new
            self.writes += 1
            return result


def _doc_id(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


@dataclass
class _Window:
    minute: int = -1
    granted: int = 0  # to this instance, this minute
    used: int = 0
    seen_total: int = 0  # granted to all instances, as of our last transaction
    refused: int = 0  # a need the minute could not hold: as big or bigger is refused without asking
    recent: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Slots:
    held: int = 0
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Standing:
    """One limit's figures for the ``x-ratelimit-*`` headers."""

    kind: str  # "requests" or "tokens"
    limit: int
    remaining: int
    reset_s: float


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``0.5s``."""
    if seconds < 60:
        return f"{max(seconds, 0.001):.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


class Permit:
    """A request admitted by the rate limits; ``release`` when it ends (frees its slot)."""

    def __init__(self, headers: dict[str, str], release: Callable[[], None] | None = None) -> None:
        self.headers = headers
        self._release = release
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


class RateLimits:
    """Per instance: the slices and slots it holds, per key and limit."""

    def __init__(
        self,
        store: RateStore,
        *,
        rpm: int | None,
        tpm: int | None,
        max_concurrent: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._clock = store, clock
        self._rpm, self._tpm, self._max_concurrent = rpm, tpm, max_concurrent
        self._instance = uuid.uuid4().hex
        self._windows: dict[tuple[str, str], _Window] = {}
        self._slots: dict[str, _Slots] = {}
        self._lock = threading.Lock()

    def admit(self, keys: list[str], tokens: int) -> Permit:
        """Count one request of ``tokens`` for every key, or raise the 429 of the limit it passes."""
        standings: list[Standing] = []
        for kind, limit, amount in (("requests", self._rpm, 1), ("tokens", self._tpm, tokens)):
            if limit is None:
                continue
            for key in keys:
                standings.append(self._take(key, kind, limit, amount, standings))
        headers = _headers(standings)
        held: list[str] = []
        if self._max_concurrent is not None:
            for key in keys:
                if not self._acquire(key):
                    for done in held:
                        self._release(done)
                    message = (
                        f"Too many requests in flight: at most {self._max_concurrent} at once (CHAT_MAX_CONCURRENT)."
                    )
                    raise ApiError(ErrorCode.RATE_LIMIT_REQUESTS, message, headers={**headers, "Retry-After": "1"})
                held.append(key)
        if not held:
            return Permit(headers)

        def release() -> None:
            for key in held:
                self._release(key)

        return Permit(headers, release)

    def _window(self, key: str, kind: str) -> _Window:
        with self._lock:
            return self._windows.setdefault((key, kind), _Window())

    def _take(self, key: str, kind: str, limit: int, amount: int, so_far: list[Standing]) -> Standing:
        window = self._window(key, kind)
        now = self._clock()
        minute = int(now // WINDOW_S)
        reset_s = (minute + 1) * WINDOW_S - now
        with window.lock:
            if window.minute != minute:
                window.minute, window.granted, window.used, window.seen_total = minute, 0, 0, 0
                window.refused = 0
            window.recent = [t for t in window.recent if t > now - 10] + [now]
            short = amount - (window.granted - window.used)
            if short > 0 and window.refused and short >= window.refused:
                self._refuse(kind, limit, Standing(kind, limit, 0, reset_s), so_far)
            if window.granted - window.used < amount:
                rate = len(window.recent) / min(10.0, max(1.0, now - window.recent[0]))
                want = amount * max(1, math.ceil(rate * LEASE_S))
                need = amount - (window.granted - window.used)
                got, total = self._store.take_window(
                    _doc_id(key, kind, str(minute)), limit, need, need + want, (minute + 2) * WINDOW_S
                )
                window.granted += got
                window.seen_total = total
                if got == 0:
                    window.refused = need
                    standing = Standing(kind, limit, max(0, limit - total), reset_s)
                    self._refuse(kind, limit, standing, so_far)
            window.used += amount
            remaining = max(0, limit - window.seen_total + window.granted - window.used)
            return Standing(kind, limit, remaining, reset_s)

    def _refuse(self, kind: str, limit: int, standing: Standing, so_far: list[Standing]) -> None:
        per = (
            "requests per minute (CHAT_RATE_LIMIT_RPM)"
            if kind == "requests"
            else "tokens per minute (CHAT_RATE_LIMIT_TPM)"
        )
        code = ErrorCode.RATE_LIMIT_REQUESTS if kind == "requests" else ErrorCode.RATE_LIMIT_TOKENS
        headers = {**_headers([*so_far, standing]), "Retry-After": str(max(1, math.ceil(standing.reset_s)))}
        raise ApiError(code, f"Rate limit reached: at most {limit} {per}. Try again shortly.", headers=headers)

    def _slots_for(self, key: str) -> _Slots:
        with self._lock:
            return self._slots.setdefault(key, _Slots())

    def _acquire(self, key: str) -> bool:
        slots = self._slots_for(key)
        assert self._max_concurrent is not None
        with slots.lock:
            if slots.busy < slots.held:
                slots.busy += 1
                return True
            if not self._store.change_slots(
                _doc_id(key, "concurrent"), self._instance, self._max_concurrent, self._clock(), take=True
            ):
                return False
            slots.held += 1
            slots.busy += 1
            return True

    def _release(self, key: str) -> None:
        slots = self._slots_for(key)
        assert self._max_concurrent is not None
        with slots.lock:
            slots.busy -= 1
            if slots.busy > 0:
                return
            self._store.change_slots(
                _doc_id(key, "concurrent"), self._instance, self._max_concurrent, self._clock(), take=False
            )
            slots.held = 0


def _headers(standings: list[Standing]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers, for the tightest key of each kind."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        mine = [s for s in standings if s.kind == kind]
        if not mine:
            continue
        tightest = min(mine, key=lambda s: s.remaining)
        headers[f"x-ratelimit-limit-{kind}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(tightest.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = _duration(tightest.reset_s)
    return headers
