"""The spend ledger's cost: Firestore writes per second per payer, and the latency it adds.

One team payer sends 50 requests per second for ``--seconds``, split over ``--instances``
instances (each its own ``SpendLeases`` and Firestore client, as separate processes would have),
against gcloud's Firestore emulator. Each request reserves its worst case (0.5 cents), waits
``--call-ms`` (the model call) and settles its real cost (0.2 cents). Printed: the ledger's
writes per second for the payer, and the reserve's latency (p50, p99) over all requests and over
those served from a live lease (what a request adds when no exchange is due).

Run alone: ``.venv/bin/python -m bench.ledger`` (after ``scripts/setup``; needs gcloud's
emulator); ``bench/run`` measures it too (``measure``) and renders it (``bench.report.ledger``).
The emulator's transactions are far slower than Firestore's, so only the write rate and the
in-memory path are meaningful figures here.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid

from bench.results import LedgerRun, Samples
from standins.processes import FirestoreEmulator

RATE = 50.0
WORST, REAL = 0.5, 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--call-ms", type=float, default=200.0)
    args = parser.parse_args()
    result = measure(args.seconds, args.instances, args.call_ms / 1000)
    print(
        f"ledger: {result.requests} requests in {result.seconds:.1f} s ({result.rps:.0f}/s), {result.instances} instances"
    )
    print(f"  Firestore writes for the payer: {result.writes} ({result.writes_per_s:.2f}/s; target <= 2/s)")
    print(
        f"  reserve, live lease ({result.live_requests} requests): p50 {_ms(result.live_p50_ms)}, "
        f"p99 {_ms(result.live_p99_ms)} (target p50 < 1 ms)"
    )
    print(
        f"  reserve, all requests: p50 {_ms(result.all_p50_ms)}, p99 {_ms(result.all_p99_ms)} "
        "(an exchange waits for its transaction)"
    )


def measure(seconds: float = 20.0, instances: int = 2, call_s: float = 0.2) -> LedgerRun:
    """``run`` against a Firestore emulator of its own, started and stopped here."""
    emulator = FirestoreEmulator().start()
    before = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        return run(seconds, instances, call_s)
    finally:
        emulator.stop()
        if before is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = before


def run(seconds: float, instances: int, call_s: float) -> LedgerRun:
    from shared.firestore_db import FirestoreDb
    from shared.ledger import LedgerStore, SpendLeases

    stores = [LedgerStore(FirestoreDb("demo-bench")) for _ in range(instances)]
    leases = [SpendLeases(store) for store in stores]
    payer, period = f"team-{uuid.uuid4().hex[:8]}", "2026-11-01T00:00:00Z"
    leases[0].reserve(payer, period, WORST, limit=1e9)  # warm the gRPC channel outside the figures
    writes_before = sum(store.writes for store in stores)
    timings: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def request(n: int) -> None:
        mine = leases[n % instances]
        store = stores[n % instances]
        before = store.writes
        started = time.perf_counter()
        key = mine.reserve(payer, period, WORST, limit=1e9)
        took = time.perf_counter() - started
        with lock:
            timings.append((took, store.writes == before))
        time.sleep(call_s)
        if key is not None:
            mine.settle(key, WORST, REAL)

    threads: list[threading.Thread] = []
    began = time.perf_counter()
    for n in range(int(seconds * RATE)):
        delay = began + n / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=request, args=(n,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    writes = sum(store.writes for store in stores) - writes_before
    for each in leases:
        each.stop()
    every = Samples([t * 1000 for t, _ in timings])
    live = Samples([t * 1000 for t, from_lease in timings if from_lease])
    return LedgerRun(
        requests=len(timings),
        seconds=elapsed,
        instances=instances,
        call_ms=call_s * 1000,
        writes=writes,
        live_requests=len(live.values),
        live_p50_ms=live.p50 if live.values else None,
        live_p99_ms=live.p99 if live.values else None,
        all_p50_ms=every.p50,
        all_p99_ms=every.p99,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


if __name__ == "__main__":
    main()
