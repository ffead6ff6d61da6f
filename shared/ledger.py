"""Budgets shared by every instance: a Firestore ledger per payer and period, spent through leases.

Why leases. The figure a budget is checked against must be the same on every instance, so it
lives in Firestore (``spend_ledger/{key}``, one document per payer and billing period). But
Firestore sustains about one write per second per document, and a team payer may send 50
requests per second: a write per request cannot work. So an instance *leases* a slice of the
payer's remaining budget in one transaction and spends it locally with reserve-then-settle
(each call holds its worst case, then gives back what it did not use); most requests touch only
memory. When the slice cannot hold the next call's worst case, is older than ``renew_s``, or
Lago reports more usage than the instance last told the ledger,
the instance *exchanges* it, in one transaction again: it reports what it spent, returns the
rest and takes a new slice. At ``stop()`` (the instance shutting down) it returns everything.

Why zero overshoot. The document keeps ``spent`` (what instances reported, or Lago's usage if
higher) and ``leased`` (slices held by instances). A transaction grants at most
``limit - spent - leased``, so ``spent + leased <= limit`` always holds; an instance lets a call
through only if its worst case fits in its own slice next to the worst cases already in flight.
So the sum of the worst cases let through never passes the limit, whatever the number of
instances and their concurrency: the real costs pass it only if a call costs more than its
worst case (which a correct price and ``max_tokens`` rule out).

Why about one write per second. A slice is sized to last ``lease_s`` seconds at the instance's
recent rate of reservations (its worst cases per second), so one instance exchanges about once
per ``lease_s``: 0.5 writes/s at ``lease_s = 2`` whatever its request rate. Near the limit a
slice is at most half of what remains (so one instance cannot hold it all), and exchanges get
more frequent as the remainder shrinks: that is the price of exactness at the edge.

Reconciliation with Lago. Lago stays the source of truth for the invoice. ``spent`` is
``max(baseline + reported, lago)``: ``baseline`` is Lago's usage when the ledger was created
(spend earlier in the period), ``lago`` the highest usage any instance has read since (spend
the ledger never saw). Lago's figure may already include spend of slices still held, which is
then counted twice until they are exchanged: the ledger errs on the side of refusing, briefly.
The period's start comes from Lago: a new period is a new document (``{payer}@{period}``).

A crashed instance cannot return its slice. Each slice carries ``expires_at`` (``ttl_s``, longer
than any call); a transaction that finds an expired slice counts it as spent (it cannot know
what was used: refusing is the safe side) and remembers it in ``reclaimed``; if that instance
comes back, its report corrects the figure. So a crash costs the payer at most one slice for
the rest of the period.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .firestore_db import FirestoreDb
from .logs import log

if TYPE_CHECKING:
    from google.cloud import firestore

COLLECTION = "spend_ledger"


# --- the arithmetic (pure: unit-tested without Firestore) ----------------------------------


@dataclass
class LedgerState:
    """One ledger document: amounts in cents; ``leases`` maps a lease id to (cents, expires_at)."""

    limit: float = 0.0
    baseline: float = 0.0
    reported: float = 0.0
    lago: float = 0.0
    leases: dict[str, tuple[float, float]] = field(default_factory=dict)
    reclaimed: dict[str, float] = field(default_factory=dict)

    @property
    def spent(self) -> float:
        return max(self.baseline + self.reported, self.lago)

    @property
    def leased(self) -> float:
        return sum(cents for cents, _ in self.leases.values())

    @property
    def available(self) -> float:
        return self.limit - self.spent - self.leased

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "baseline": self.baseline,
            "reported": self.reported,
            "lago": self.lago,
            "leases": {k: {"cents": c, "expires_at": e} for k, (c, e) in self.leases.items()},
            "reclaimed": dict(self.reclaimed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerState:
        leases = {k: (float(v["cents"]), float(v["expires_at"])) for k, v in (data.get("leases") or {}).items()}
        return cls(
            limit=float(data.get("limit", 0)),
            baseline=float(data.get("baseline", 0)),
            reported=float(data.get("reported", 0)),
            lago=float(data.get("lago", 0)),
            leases=leases,
            reclaimed={k: float(v) for k, v in (data.get("reclaimed") or {}).items()},
        )


@dataclass(frozen=True)
class Exchange:
    """What an instance asks in one transaction: give back ``returning`` (having spent ``used``
    of it), and take a new slice of at least ``need`` (the worst cases it must cover), ideally
    ``want``, as lease ``lease_id``. ``need`` 0 only returns."""

    returning: str | None
    used: float
    lease_id: str
    need: float
    want: float
    limit: float | None  # None: keep the document's (returning only)
    lago: float
    now: float
    ttl_s: float


def settle_exchange(state: LedgerState, ask: Exchange) -> float:
    """Apply ``ask`` to ``state`` (in place) and return the slice granted: ``need`` or more, or
    only what is left when ``need`` does not fit (the caller refuses its call then)."""
    if ask.limit is not None:
        state.limit = ask.limit
    state.lago = max(state.lago, ask.lago)
    for lease_id, (cents, expires_at) in list(state.leases.items()):
        if expires_at <= ask.now and lease_id != ask.returning:  # its instance is gone: assume spent
            del state.leases[lease_id]
            state.reported += cents
            state.reclaimed[lease_id] = cents
    if ask.returning is not None:
        if ask.returning in state.leases:
            del state.leases[ask.returning]
            state.reported += ask.used
        elif ask.returning in state.reclaimed:  # counted as all spent while we were away
            state.reported += ask.used - state.reclaimed.pop(ask.returning)
        else:
            state.reported += ask.used
    if ask.need <= 0:
        return 0.0
    room = max(0.0, state.available)
    granted = min(room, max(ask.need, min(ask.want, room / 2)))
    if granted > 0:
        state.leases[ask.lease_id] = (granted, ask.now + ask.ttl_s)
    return granted


# --- Firestore ------------------------------------------------------------------------------


class LedgerStore:
    """The ledger documents, each exchange one Firestore transaction, in the instance's one client."""

    def __init__(self, db: FirestoreDb, *, timeout_s: float = 5.0) -> None:
        self._database = db
        self._timeout_s = timeout_s
        self.writes = 0  # transactions committed by this instance (the benchmark reads it)

    def _db(self) -> firestore.Client:
        return self._database.client()

    def exchange(self, key: str, ask: Exchange, *, payer: str, period: str) -> float:
        def change(data: dict[str, Any] | None) -> tuple[dict[str, Any], float]:
            state = LedgerState.from_dict(data) if data else LedgerState(baseline=ask.lago)
            granted = settle_exchange(state, ask)
            return {**state.to_dict(), "payer": payer, "period": period, "updated_at": ask.now}, granted

        granted = self._database.transact(COLLECTION, key, change, timeout_s=self._timeout_s)
        self.writes += 1
        return granted

    def read(self, key: str) -> LedgerState | None:
        snapshot = self._db().collection(COLLECTION).document(key).get(timeout=self._timeout_s)
        data = snapshot.to_dict() if snapshot.exists else None
        return LedgerState.from_dict(data) if data else None


class LocalLedgerStore(LedgerStore):
    """The same transactions on this process's memory: exact for one instance only. For local
    runs without a Firestore emulator (``scripts/run``); a deployed instance never uses it."""

    def __init__(self) -> None:
        super().__init__(FirestoreDb(None))  # never asked for a client
        self._states: dict[str, LedgerState] = {}
        self._mutex = threading.Lock()

    def exchange(self, key: str, ask: Exchange, *, payer: str, period: str) -> float:
        with self._mutex:
            state = self._states.setdefault(key, LedgerState(baseline=ask.lago))
            self.writes += 1
            return settle_exchange(state, ask)

    def read(self, key: str) -> LedgerState | None:
        with self._mutex:
            return self._states.get(key)


def ledger_key(payer: str, period: str) -> str:
    """A document id for any payer (ids cannot hold ``/``; a team claim might)."""
    return hashlib.sha256(f"{payer}\n{period}".encode()).hexdigest()[:40]


# --- one instance's slices --------------------------------------------------------------------


@dataclass
class _Lease:
    lease_id: str | None = None
    granted: float = 0.0
    used: float = 0.0  # real cost of the calls settled under this lease
    open: float = 0.0  # worst cases of the calls in flight
    taken_at: float = 0.0
    refused_at: float = float("-inf")
    exchanging: threading.Event | None = None  # set when the exchange under way ends
    lago: float = 0.0  # the highest Lago usage this instance has told the document
    recent: collections.deque[tuple[float, float]] = field(default_factory=collections.deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def free(self) -> float:
        return self.granted - self.used - self.open


@dataclass(frozen=True)
class LeaseSettings:
    lease_s: float = 2.0  # a slice should last this long at the recent rate
    renew_s: float = 30.0  # exchange a slice this old even if it has room
    ttl_s: float = 120.0  # after this, other instances count an unreturned slice as spent
    rate_window_s: float = 10.0
    refusal_s: float = 1.0  # after a refusal, refuse locally this long before asking again
    early_s: float = 0.5  # top the slice up when less than this long of the recent rate is left


class SpendLeases:
    """Per instance: the slices it holds, one per ledger key, spent with reserve-then-settle."""

    def __init__(
        self, store: LedgerStore, settings: LeaseSettings = LeaseSettings(), clock: Callable[[], float] = time.time
    ) -> None:
        self._store, self._settings, self._clock = store, settings, clock
        self._store_timeout_s = 30.0  # a waiter looks again at least this often
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._periods: dict[str, tuple[str, str]] = {}  # key -> (payer, period)
        atexit.register(self.stop)

    def _lease(self, key: str) -> _Lease:
        with self._lock:
            return self._leases.setdefault(key, _Lease())

    def reserve(self, payer: str, period: str, cents: float, *, limit: float, lago: float = 0.0) -> str | None:
        """Hold ``cents`` against the payer's ledger; the key to settle with, or None when the
        limit cannot hold it.

        A request that fits in the slice returns at once. When the slice runs low (less than
        ``early_s`` of the recent rate) the request that notices tops it up, after taking its
        own share, while the others go on spending what is left; only a request that does not
        fit waits for the exchange under way (one at a time per key: no lock is held meanwhile).
        """
        key = ledger_key(payer, period)
        lease = self._lease(key)
        while True:
            now = self._clock()
            with lease.lock:
                if not lease.recent or lease.recent[-1][0] != now:
                    lease.recent.append((now, cents))
                while lease.recent and lease.recent[0][0] < now - self._settings.rate_window_s:
                    lease.recent.popleft()
                rate = self._rate(lease, now)
                stale = now - lease.taken_at >= self._settings.renew_s or lago > lease.lago
                running = lease.exchanging
                if lease.lease_id is not None and lease.free >= cents and (not stale or running):
                    lease.open += cents
                    low = lease.free < rate * self._settings.early_s or stale
                    if running is not None or not low:
                        return key
                    extra = 0.0  # this request is covered; top the slice up for the next ones
                elif running is not None:
                    extra = -1.0  # wait for the exchange under way, then look again
                elif now - lease.refused_at < self._settings.refusal_s and not stale:
                    return None  # refused a moment ago: a payer at its limit costs no write per request
                else:
                    extra = cents
                if extra >= 0:
                    lease.exchanging = threading.Event()
                    need = max(lease.granted - lease.used, lease.open) + extra
                    want = need + max(rate * self._settings.lease_s, 3 * cents)
                    ask = self._ask(lease, need, want, limit, lago, now)
            if extra < 0:
                assert running is not None
                running.wait(self._store_timeout_s)
                continue
            self._run_exchange(key, lease, ask, payer, period, lago)
            if extra == 0:
                return key
            with lease.lock:
                if lease.free >= cents:  # the new slice may hold less than asked and still fit the call
                    lease.open += cents
                    return key
                lease.refused_at = now
                return None

    def _rate(self, lease: _Lease, now: float) -> float:
        """Worst cases reserved per second lately (over the window, or since the first call)."""
        seconds = min(self._settings.rate_window_s, max(1.0, now - lease.recent[0][0]))
        return sum(c for _, c in lease.recent) / seconds

    def settle(self, key: str, reserved: float, actual: float) -> None:
        lease = self._lease(key)
        with lease.lock:
            lease.open = lease.open - reserved
            if lease.open < 1e-9:  # floating point dust would keep a slice from being returned
                lease.open = 0.0
            lease.used += actual

    def _ask(self, lease: _Lease, need: float, want: float, limit: float | None, lago: float, now: float) -> Exchange:
        new_id = uuid.uuid4().hex if need > 0 else ""
        return Exchange(lease.lease_id, lease.used, new_id, need, want, limit, lago, now, self._settings.ttl_s)

    def _run_exchange(self, key: str, lease: _Lease, ask: Exchange, payer: str, period: str, lago: float) -> float:
        """One transaction, no lock held; then the slice is replaced (what was settled meanwhile
        stays to be reported next time)."""
        assert lease.exchanging is not None
        done = lease.exchanging
        try:
            granted = self._store.exchange(key, ask, payer=payer, period=period)
            with self._lock:
                self._periods[key] = (payer, period)
            with lease.lock:
                lease.lago = max(lease.lago, lago)
                lease.lease_id = ask.lease_id if granted > 0 else None
                lease.granted, lease.used, lease.taken_at = granted, lease.used - ask.used, ask.now
            return granted
        finally:
            with lease.lock:
                lease.exchanging = None
            done.set()

    def stop(self) -> None:
        """Return every slice (the instance is going away)."""
        with self._lock:
            held = [(k, lease) for k, lease in self._leases.items() if lease.lease_id is not None]
        for key, lease in held:
            with lease.lock:
                if lease.lease_id is None or lease.open > 0 or lease.exchanging is not None:
                    continue  # a call in flight still needs it; the ttl will reclaim it
                lease.exchanging = threading.Event()
                ask = self._ask(lease, 0.0, 0.0, None, 0.0, self._clock())
            payer, period = self._periods[key]
            try:
                self._run_exchange(key, lease, ask, payer, period, 0.0)
            except Exception as error:  # noqa: BLE001 - shutting down: the ttl reclaims it
                log("WARNING", "ledger_return_failed", error_class=type(error).__name__)
