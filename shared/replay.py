"""Draining the billing outbox into Lago (the ``replay_billing`` route, which Cloud Scheduler calls, runs it).

One run keeps going until nothing is due or its time budget ends, in three overlapping stages:

- a reader thread reads a page of due documents and claims it (``Outbox.claim``), one page
  ahead of the sender, so Firestore's reads overlap Lago's sends;
- the sender posts the page to Lago's batch endpoint, 100 events per request, a few requests
  in flight, paced to a share of Lago's rate limit and waiting out a 429's ``X-RateLimit-Reset``;
- a writer thread settles each sent page in batched writes (``Outbox.settle``).

Lago being slow or down never fails the run: its events back off and the run ends early with
a 200 that counts what is left (``remaining``), for the next run, or a re-invocation, to go on.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, ErrorCode
from .lago_events import BATCH_LIMIT, Delivery, LagoEventsClient, Outcome
from .logs import log
from .outbox import Claimed, Outbox, chunks
from .shutdown import SHUTDOWN

_SEND_PARALLEL = 4  # batch requests in flight at once
# Lago takes 500 event requests/s per organization: a replay keeps to a tenth of that (5,000
# events/s), leaving the rest to the chat instances' own events.
_MAX_REQUESTS_PER_S = 50.0
_LEASE_MARGIN_S = 60.0  # a claim outlives its run's budget by this much, then it is due again
# One batch's retries end here: Lago down costs a run a few seconds, not its whole budget.
_BATCH_DEADLINE_S = 5.0


@dataclass
class ReplayReport:
    """What one run did, and what it left (``remaining``: pending events, due now or later)."""

    delivered: int = 0
    retry_later: int = 0
    failed: int = 0
    released: int = 0  # claimed, but the budget ended before they were sent: due again at once
    requests: int = 0  # batches sent to Lago (each with its retries)
    remaining: int | None = None  # None when the count itself failed
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retry_later": self.retry_later,
            "failed": self.failed,
            "released": self.released,
            "requests": self.requests,
            "remaining": self.remaining,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Page:
    """One sent page's outcomes."""

    delivered: list[Claimed] = field(default_factory=list)
    refused: list[tuple[Claimed, str]] = field(default_factory=list)
    retry: list[tuple[Claimed, str]] = field(default_factory=list)
    unsent: list[Claimed] = field(default_factory=list)

    def add(self, claim: Claimed, delivery: Delivery) -> None:
        if delivery.outcome.delivered:
            self.delivered.append(claim)
        elif delivery.outcome is Outcome.PERMANENT:
            log(
                "ERROR",
                "billing_event_refused",
                transaction_id=claim.doc_id,
                status=delivery.status,
                detail=delivery.detail,
            )
            self.refused.append((claim, delivery.detail))
        else:
            self.retry.append((claim, delivery.detail or str(delivery.status)))


class _Pacer:
    """Spaces requests from several threads to at most ``per_second``; waits out a 429's reset."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = clock()
        self._lock = threading.Lock()

    def wait(self, deadline: float) -> bool:
        """Take the next slot; False (no slot taken) if it comes after ``deadline``."""
        with self._lock:
            slot = max(self._next, self._clock())
            if slot >= deadline:
                return False
            self._next = slot + self._interval
        self._sleep(max(0.0, slot - self._clock()))
        return True

    def pause(self, seconds: float) -> None:
        """No slot before ``seconds`` from now (a 429's reset)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


class ReplayRun:
    """One run over the outbox, until nothing is due or ``budget_s`` has passed."""

    def __init__(self, outbox: Outbox, client: LagoEventsClient, *, page_size: int, budget_s: float) -> None:
        self._outbox, self._client, self._page_size = outbox, client, page_size
        self._budget_s = budget_s
        self._ends_at = 0.0
        self._stop = threading.Event()
        self._pacer = _Pacer(_MAX_REQUESTS_PER_S)
        self.report = ReplayReport()

    def run(self) -> ReplayReport:
        began = time.monotonic()
        self._ends_at = began + self._budget_s
        pages: queue.Queue[list[Claimed] | BaseException | None] = queue.Queue(maxsize=1)
        reader = threading.Thread(target=self._read, args=(pages,), name="replay-reader", daemon=True)
        reader.start()
        settling: list[Future[None]] = []
        failure: BaseException | None = None
        with (
            ThreadPoolExecutor(_SEND_PARALLEL, "replay-send") as senders,
            ThreadPoolExecutor(1, "replay-write") as writer,
        ):
            while (item := pages.get()) is not None:
                if isinstance(item, BaseException):
                    failure = item
                    continue
                page = self._send(item, senders) if not self._stopping() else _Page(unsent=item)
                settling.append(writer.submit(self._settle, page))
                if page.retry and not page.delivered:
                    self._stop.set()  # Lago is down, or refuses our key: the rest waits for a later run
        reader.join()
        for settled in settling:
            settled.result()  # a failed write is the run's error
        if failure is not None:
            raise failure
        self.report.remaining = self._outbox.count_pending()
        self.report.seconds = time.monotonic() - began
        return self.report

    def _stopping(self) -> bool:
        """Lago failed a whole page, or the instance got SIGTERM: hand back what is not sent."""
        return self._stop.is_set() or SHUTDOWN.draining

    def _read(self, pages: queue.Queue[list[Claimed] | BaseException | None]) -> None:
        """Read pages ahead of the sender and claim them, until nothing is due or the run must
        stop. Pages follow one another by cursor, so the next is read while the last is being
        claimed; at the end one read from the start picks up what came back meanwhile."""
        run_id = uuid.uuid4().hex
        lease_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._budget_s + _LEASE_MARGIN_S)
        claiming: Future[list[Claimed]] | None = None
        after = None
        try:
            with ThreadPoolExecutor(1, "replay-claim") as claimer:
                while not self._stopping() and time.monotonic() < self._ends_at:
                    due = self._outbox.read_due(self._page_size, after)
                    if claiming is not None:
                        _hand_over(pages, claiming.result())
                        claiming = None
                    if not due and after is None:
                        break
                    after = due[-1] if due else None
                    if due:
                        claiming = claimer.submit(self._outbox.claim, due, run_id, lease_until)
                if claiming is not None:
                    _hand_over(pages, claiming.result())
        except Exception as error:  # noqa: BLE001 - handed to the run, which raises it after settling
            pages.put(error)
        finally:
            pages.put(None)

    def _send(self, claimed: list[Claimed], senders: ThreadPoolExecutor) -> _Page:
        page = _Page()
        for batch, deliveries in senders.map(self._send_batch, chunks(claimed, BATCH_LIMIT)):
            if deliveries is None:
                page.unsent.extend(batch)
                continue
            self.report.requests += 1
            for claim, delivery in zip(batch, deliveries, strict=True):
                page.add(claim, delivery)
        return page

    def _send_batch(self, batch: list[Claimed]) -> tuple[list[Claimed], list[Delivery] | None]:
        if self._stopping() or not self._pacer.wait(self._ends_at):
            return batch, None
        deadline = min(self._ends_at, time.monotonic() + _BATCH_DEADLINE_S)
        deliveries = self._client.send_batch([claim.event for claim in batch], deadline)
        if deadline == self._ends_at and all(d.outcome is Outcome.TRANSIENT for d in deliveries):
            return batch, None  # the run's time ran out, not Lago: hand them back, due at once
        resets = [d.retry_after_s for d in deliveries if d.retry_after_s is not None]
        if resets:
            self._pacer.pause(max(resets))  # Lago said when its limit resets: every sender waits
        return batch, deliveries

    def _settle(self, page: _Page) -> None:
        self._outbox.settle(delivered=page.delivered, refused=page.refused, retry=page.retry, release=page.unsent)
        self.report.delivered += len(page.delivered)
        self.report.failed += len(page.refused)
        self.report.retry_later += len(page.retry)
        self.report.released += len(page.unsent)


def _hand_over(pages: queue.Queue[list[Claimed] | BaseException | None], claimed: list[Claimed]) -> None:
    if claimed:  # else another run holds that page
        pages.put(claimed)


def drain_outbox(outbox: Outbox, client: LagoEventsClient, *, page_size: int, budget_s: float) -> ReplayReport:
    """One replay run over the outbox: its counts, or a 503 ``ApiError`` if Firestore failed it."""
    run = ReplayRun(outbox, client, page_size=page_size, budget_s=budget_s)
    return _outbox_guarded(run.run, run.report)


def _outbox_guarded(run: Callable[[], ReplayReport], partial: ReplayReport) -> ReplayReport:
    """Firestore failing is the one thing that fails a run: a 503 that says so, and what got done."""
    from google.api_core.exceptions import GoogleAPIError

    try:
        return run()
    except GoogleAPIError as error:
        log("ERROR", "billing_replay_failed", error_class=type(error).__name__, **partial.to_dict())
        message = f"The billing outbox failed ({type(error).__name__}) after {partial.delivered} events were delivered."
        raise ApiError(ErrorCode.UNAVAILABLE, message) from error
