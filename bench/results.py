"""What one benchmark run measured, as typed values: ``bench.run`` fills them, ``bench.report``
renders them. A field that is misspelt or missing is a type error here, not a silent blank in
docs/PERFORMANCE.md."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Samples:
    """Latencies in milliseconds."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds * 1000)

    @property
    def p50(self) -> float:
        return statistics.median(self.values)

    @property
    def p99(self) -> float:
        return percentile(self.values, 99)


@dataclass(frozen=True)
class Machine:
    date: str
    cpus: str
    cpu: str
    memory: str
    python: str
    packages: str
    load: str


@dataclass(frozen=True)
class ImportTiming:
    """``python -c 'import litellm'``: spawn to the end of the import, and the import alone (s)."""

    wall: float
    own: float
    cpu: float  # the process's CPU time, start to the end of the import


@dataclass(frozen=True)
class ColdStart:
    """One cold start to the first billed answer of an authenticated request, in seconds."""

    total: float  # spawn to the first billed response
    cpu: float  # CPU time of the server's processes (master and worker) by then
    imports: float  # spawn to start_instance: interpreter, secrets, functions-framework, flask, litellm, shared
    secrets: float  # of ``imports``: reading the secrets from Secret Manager (``secrets_loaded`` elapsed_ms)
    build: float  # start_instance: settings, models, verifier, Lago callback and client
    worker: float  # after start_instance until the first call was sent (server start, fork of the worker)
    first_call: float  # the first request, as the client saw it
    billed: bool  # its event was in Lago when the answer came back


@dataclass(frozen=True)
class ColdStarts:
    runs: list[ColdStart]
    import_litellm: ImportTiming  # best of as many runs, alternated with the cold starts
    register_callback: float | None  # the Lago callback's registration, timed alone in another process (s)

    @property
    def best(self) -> ColdStart:
        """Best of N: the run least disturbed by other work on the machine."""
        return min(self.runs, key=lambda run: run.total)

    @property
    def median_total(self) -> float:
        return statistics.median(run.total for run in self.runs)

    @property
    def ratio(self) -> float:
        return self.best.total / self.import_litellm.wall

    @property
    def cpu_ratio(self) -> float:
        """CPU over CPU: what the ratio would be on an idle machine, whatever else ran on this one."""
        return min(run.cpu for run in self.runs) / self.import_litellm.cpu


@dataclass
class Latency:
    """Sequential latencies of one path: JSON answers, and a stream's first and last byte."""

    json: Samples = field(default_factory=Samples)
    ttfb: Samples = field(default_factory=Samples)
    last: Samples = field(default_factory=Samples)


@dataclass(frozen=True)
class PathLatencies:
    bare: Latency  # litellm.completion in the benchmark's process
    unbilled: Latency  # the function without Lago
    billed: Latency  # the function with Lago


@dataclass(frozen=True)
class Throughput:
    kind: str  # "JSON" or "stream"
    requests: int
    ok: int
    seconds: float
    latency: Samples
    events: int  # events in Lago for the run, counted after it

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Rss:
    """Resident memory in MB of the gunicorn worker (which serves the requests) and master."""

    worker: float
    master: float


@dataclass(frozen=True)
class Memory:
    early: Rss  # after the warm-up of latency runs
    warm: Rss  # after the throughput run
    after: Rss  # after ``requests`` more
    requests: int

    @property
    def growth(self) -> float:
        return self.after.worker - self.warm.worker


@dataclass(frozen=True)
class Timeliness:
    """Of ``calls`` sequential answers, how many had their event in Lago when the answer ended,
    and how many events were in Lago ``settle_s`` seconds after the last one."""

    calls: int
    at_end: int
    settled: int
    settle_s: float


@dataclass(frozen=True)
class Side:
    """One gateway's figures in the side-by-side comparison."""

    name: str
    latency: Latency  # sequential, JSON and stream
    throughput: Throughput  # JSON, concurrent clients
    timeliness: Timeliness


@dataclass(frozen=True)
class Comparison:
    """The function against LiteLLM Proxy, same stand-ins, same client, one run."""

    function: Side
    proxy: Side
    clients: int


@dataclass(frozen=True)
class LedgerRun:
    """The spend ledger (``bench.ledger``): one team payer's requests over ``instances`` instances
    against gcloud's Firestore emulator, and what each ``reserve`` took, in ms."""

    requests: int
    seconds: float
    instances: int
    call_ms: float  # each request's model call, between its reserve and its settle
    writes: int  # Firestore transactions committed for the payer during the run
    live_requests: int  # requests served from a live lease (no transaction of their own)
    live_p50_ms: float | None  # None when no request was served from a live lease
    live_p99_ms: float | None
    all_p50_ms: float
    all_p99_ms: float

    @property
    def writes_per_s(self) -> float:
        return self.writes / self.seconds

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Results:
    machine: Machine
    rounds: int
    clients: int
    cold: ColdStarts
    latency: PathLatencies
    lago_rtt: Samples
    throughput: list[Throughput]
    memory: Memory
    comparison: Comparison | None  # None when the proxy was not run (--no-proxy)
    ledger: LedgerRun
