"""Where the system breaks as load grows past one instance: a small model, not a load test.

``.venv/bin/python -m bench.scale [--rps R ...] [--stream-share S] ...`` prints, for a request
mix, the request rate at which each outside limit is reached, then what happens at 1x, 10x and
100x a base rate (default: the single-instance throughput measured by ``bench/run``). The
limits and their sources are in docs/SCALE.md; each is a field of ``Limits`` below. The outbox
replay and the budget ledger are modelled as built: a replay run drains at the rate measured in
docs/PERFORMANCE.md for ``BILLING_REPLAY_BUDGET_S``, and each instance serving a payer exchanges
its ledger slice about once per ``lease_s`` (``shared/ledger.py``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Limits:
    """Outside limits (docs/SCALE.md cites each) and this project's deployed defaults."""

    lago_events_rps: float = 500  # Lago: event ingestion, requests/s per organization
    lago_usage_rps: float = 200  # Lago: current usage, requests/s
    lago_other_rps: float = 50  # Lago: every other endpoint (customers, subscriptions)
    lago_batch_size: int = 100  # Lago: events per POST /events/batch
    firestore_doc_writes_s: float = 1.0  # Firestore: sustained writes per document
    firestore_hot_index_writes_s: float = 500  # Firestore: writes/s on a monotonically increasing indexed field
    secret_accesses_per_min: float = 90_000  # Secret Manager: access requests per minute per project
    max_instances: int = 20  # deploy.sh MAX_INSTANCES
    concurrency: int = 8  # deploy.sh CONCURRENCY (requests an instance is sent at once)
    threads: int = 4  # functions-framework's THREADS default: 4 per CPU, CPU=1 in deploy.sh
    memory_mb: float = 1024  # deploy.sh MEMORY


@dataclass(frozen=True)
class Mix:
    """The load: how requests look and who sends them."""

    stream_share: float = 0.7  # share of streaming requests
    json_s: float = 2.0  # provider time of a JSON answer
    stream_s: float = 8.0  # provider time of a streamed answer
    cpu_ms: float = 11.0  # our CPU per request (bench/run: 2 cores / 181 req/s, client and stand-ins included)
    payers_per_instance: int = 50  # distinct payers an instance serves within CHAT_USAGE_CACHE_S
    top_payer_share: float = 0.05  # the busiest payer's share of all requests (a team)
    usage_cache_s: float = 10.0  # CHAT_USAGE_CACHE_S: one Lago usage read per payer per instance per period
    lease_s: float = 2.0  # shared/ledger.py: a slice lasts ~2 s, so one exchange (a write) per instance per 2 s
    worker_mb: float = 340  # bench/run: RSS of the worker after warm-up
    master_mb: float = 215  # bench/run: the gunicorn master (shares pages with the worker until written)
    per_request_mb: float = 1.7  # bench/run: worker growth over the 8-client warm-up / 8 (an upper bound)
    secrets_per_cold_start: int = 4  # deploy.sh: Lago's three + one provider key
    outage_s: float = 3600  # a Lago outage to recover from
    replay_every_s: float = 300  # deploy.sh's Cloud Scheduler job: every 5 minutes
    replay_events_s: float = 272  # PERFORMANCE.md: the slowest of three measured 10,000-event runs
    replay_budget_s: float = 50  # BILLING_REPLAY_BUDGET_S: how long one run keeps draining

    @property
    def latency_s(self) -> float:
        return self.stream_share * self.stream_s + (1 - self.stream_share) * self.json_s


@dataclass(frozen=True)
class Pressure:
    """One limit at a given load: how much of it is used, and what happens past it."""

    limit: str
    used: float
    cap: float
    then: str

    @property
    def broken(self) -> bool:
        return self.used > self.cap


def instance_rps(limits: Limits, mix: Mix) -> float:
    """Requests/s one instance sustains: the fewer of its threads' and its CPU's."""
    slots = min(limits.concurrency, limits.threads)
    return min(slots / mix.latency_s, 1000 / mix.cpu_ms)


def pressures(rps: float, limits: Limits, mix: Mix) -> list[Pressure]:
    """Every modelled limit at ``rps`` total requests/s, all instances together."""
    instances = math.ceil(rps / instance_rps(limits, mix))
    in_flight_top_payer = mix.top_payer_share * rps * mix.latency_s
    memory_mb = mix.worker_mb + mix.master_mb + limits.concurrency * mix.per_request_mb
    return [
        Pressure(
            "instances", instances, limits.max_instances, "Cloud Run queues, then refuses (429), past max instances"
        ),
        Pressure(
            "Lago event requests/s",
            rps,
            limits.lago_events_rps,
            "429s: each call waits up to LAGO_FLUSH_TIMEOUT_S (3 s), then its event goes to the outbox",
        ),
        Pressure(
            "outbox writes/s while Lago is down (one document each, indexed by next_attempt_at)",
            rps,
            limits.firestore_hot_index_writes_s,
            "writes contend on the index's hot end and fail after their retries: the event is only in the log",
        ),
        Pressure(
            "Lago usage reads/s (budgets on: each instance reads each payer once per CHAT_USAGE_CACHE_S)",
            instances * mix.payers_per_instance / mix.usage_cache_s,
            limits.lago_usage_rps,
            "429s on usage reads: budgets decide on stale figures",
        ),
        Pressure(
            "Lago provisioning calls/s when every instance starts within a minute",
            2 * mix.payers_per_instance * instances / 60,
            limits.lago_other_rps,
            "first requests of new instances wait on Lago; failures are retried 30 s later, unprovisioned payers unbilled",
        ),
        Pressure(
            "ledger writes/s on the top payer's document (budgets on: one exchange per instance serving it per lease)",
            min(instances, in_flight_top_payer) / mix.lease_s,
            limits.firestore_doc_writes_s,
            "exchanges contend and retry; a call that needs one waits, and one that cannot get it is a 503: "
            "spread a payer over several documents, or lengthen slices as instances join",
        ),
        Pressure(
            "ledger writes/s on the project cap's document (CHAT_PROJECT_BUDGET_CENTS: every instance leases from it)",
            instances / mix.lease_s,
            limits.firestore_doc_writes_s,
            "the same, for every payer at once: shard the project's ledger, or lengthen its slices",
        ),
        Pressure(
            "Secret Manager accesses/min when every instance starts within a minute",
            instances * mix.secrets_per_cold_start,
            limits.secret_accesses_per_min,
            "cold starts fail their reads: billing off, chat 503 where billing is required",
        ),
        Pressure(
            f"memory MB per instance at {limits.concurrency} in flight",
            memory_mb,
            limits.memory_mb,
            "the instance is killed (out of memory) with its streams unbilled",
        ),
        Pressure(
            "requests in flight per instance beyond gunicorn's threads",
            max(0, limits.concurrency - limits.threads),
            0,
            "admitted requests wait for a thread behind streams lasting seconds: set THREADS to CONCURRENCY",
        ),
    ]


def breaking_rps(index: int, limits: Limits, mix: Mix) -> float:
    """The lowest total requests/s at which limit ``index`` is exceeded (0: already; inf: never)."""
    low, high = 0.01, 1e7
    if pressures(low, limits, mix)[index].broken:
        return 0.0
    if not pressures(high, limits, mix)[index].broken:
        return math.inf
    while high / low > 1.001:
        middle = math.sqrt(low * high)
        low, high = (low, middle) if pressures(middle, limits, mix)[index].broken else (middle, high)
    return high


def drain_s(rps: float, mix: Mix) -> tuple[float, float]:
    """Seconds to replay the backlog an outage of ``mix.outage_s`` leaves: with one run per
    scheduler period, and with runs back to back (called again while one answers ``remaining``)."""
    backlog = rps * mix.outage_s
    per_run = mix.replay_events_s * mix.replay_budget_s
    return backlog / (per_run / mix.replay_every_s), backlog / mix.replay_events_s


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:,.0f} days"


def _fmt_rps(value: float) -> str:
    return "never" if math.isinf(value) else "already" if value <= 0 else f"{value:,.0f} req/s"


def report(limits: Limits, mix: Mix, base_rps: float) -> str:
    per_instance = instance_rps(limits, mix)
    lines = [
        f"mix: {mix.stream_share:.0%} streams of {mix.stream_s:g} s, JSON answers of {mix.json_s:g} s, "
        f"{mix.cpu_ms:g} ms of our CPU each; {mix.payers_per_instance} payers per instance; the top payer "
        f"sends {mix.top_payer_share:.0%}",
        f"one instance: {per_instance:.2f} req/s (the fewer of {min(limits.concurrency, limits.threads)} threads / "
        f"{mix.latency_s:.1f} s and 1000 / {mix.cpu_ms:g} ms); at most {limits.max_instances} instances",
        "",
        "where each limit breaks (total requests/s across instances):",
    ]
    names = pressures(1.0, limits, mix)
    points = sorted(((breaking_rps(i, limits, mix), p) for i, p in enumerate(names)), key=lambda x: x[0])
    for at, p in points:
        lines.append(f"  {_fmt_rps(at):>14}  {p.limit} (limit {p.cap:,.0f}): {p.then}")
    lines += ["", f"at multiples of {base_rps:,.0f} req/s (the base rate):"]
    for factor in (1, 10, 100):
        rps = base_rps * factor
        broken = [f"{p.limit} {p.used:,.0f}/{p.cap:,.0f}" for p in pressures(rps, limits, mix) if p.broken]
        scheduled, back_to_back = drain_s(rps, mix)
        lines.append(
            f"  {factor:>3}x = {rps:,.0f} req/s, {math.ceil(rps / per_instance):,} instances: a "
            f"{mix.outage_s / 3600:g} h Lago outage leaves {rps * mix.outage_s:,.0f} events, replayed at "
            f"{mix.replay_events_s:g} events/s in {_hours(scheduled)} at one {mix.replay_budget_s:g} s run per "
            f"{mix.replay_every_s / 60:g} min, {_hours(back_to_back)} with runs back to back"
        )
        lines.append("        over a limit: " + ("; ".join(broken) or "nothing"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--base-rps", type=float, default=181.0, help="1x (default: bench/run's 8-client rate)")
    parser.add_argument("--stream-share", type=float, default=Mix.stream_share)
    parser.add_argument("--json-s", type=float, default=Mix.json_s)
    parser.add_argument("--stream-s", type=float, default=Mix.stream_s)
    parser.add_argument("--max-instances", type=int, default=Limits.max_instances)
    parser.add_argument("--concurrency", type=int, default=Limits.concurrency)
    parser.add_argument("--threads", type=int, default=Limits.threads)
    parser.add_argument("--top-payer-share", type=float, default=Mix.top_payer_share)
    args = parser.parse_args(argv)
    limits = replace(Limits(), max_instances=args.max_instances, concurrency=args.concurrency, threads=args.threads)
    mix = replace(
        Mix(),
        stream_share=args.stream_share,
        json_s=args.json_s,
        stream_s=args.stream_s,
        top_payer_share=args.top_payer_share,
    )
    print(report(limits, mix, args.base_rps))


if __name__ == "__main__":
    main()
