"""The spend ledger's cost: Firestore writes per second per payer, and the latency it adds.

One team payer sends 50 requests per second for ``--seconds``, split over ``--instances``
instances (each its own ``SpendLeases`` and Firestore client, as separate processes would have),
against gcloud's Firestore emulator. Each request reserves its worst case (0.5 cents), waits
``--call-ms`` (the model call) and settles its real cost (0.2 cents). Printed: the ledger's
writes per second for the payer, and the reserve's latency (p50, p99) over all requests and over
those served from a live lease (what a request adds when no exchange is due).

Run: ``.venv/bin/python -m bench.ledger`` (after ``scripts/setup``; needs gcloud's emulator).
Not part of ``bench/run``: the emulator's transactions are far slower than Firestore's, so only
the write rate and the in-memory path are meaningful figures here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

from tests.support.processes import FirestoreEmulator

RATE = 50.0
WORST, REAL = 0.5, 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--call-ms", type=float, default=200.0)
    args = parser.parse_args()
    emulator = FirestoreEmulator().start()
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        run(args.seconds, args.instances, args.call_ms / 1000)
    finally:
        emulator.stop()


def run(seconds: float, instances: int, call_s: float) -> None:
    from shared.ledger import LedgerStore, SpendLeases

    stores = [LedgerStore("demo-bench") for _ in range(instances)]
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
    every = sorted(t for t, _ in timings)
    live = sorted(t for t, from_lease in timings if from_lease)
    print(f"ledger: {len(timings)} requests in {elapsed:.1f} s ({len(timings) / elapsed:.0f}/s), {instances} instances")
    print(f"  Firestore writes for the payer: {writes} ({writes / elapsed:.2f}/s; target <= 2/s)")
    print(
        f"  reserve, live lease ({len(live)} requests): p50 {_ms(live, 0.5)}, p99 {_ms(live, 0.99)} (target p50 < 1 ms)"
    )
    print(
        f"  reserve, all requests: p50 {_ms(every, 0.5)}, p99 {_ms(every, 0.99)} (an exchange waits for its transaction)"
    )


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    if q == 0.5:
        return f"{statistics.median(values) * 1000:.3f} ms"
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.3f} ms"


if __name__ == "__main__":
    main()
