"""Benchmarks: cold start, per-request overhead over bare LiteLLM, throughput, memory, the
function side by side with LiteLLM Proxy, and the budget ledger's Firestore writes and latency.

Run from the repository root: ``bench/run`` (or ``.venv/bin/python -m bench.run`` once the
proxy's virtualenv exists). It prints a table and writes it into docs/PERFORMANCE.md between the
``bench:begin`` / ``bench:end`` markers (``--no-write`` to only print). Everything runs on
127.0.0.1:

- the stand-ins (an OpenAI-wire LLM, Lago, Secret Manager, Google's token certificates,
  ``standins``) in a process of their own (``bench.standins``);
- functions-framework serving ``functions/main.py``: for the cold start on the production token
  path with its secrets in the Secret Manager stand-in; for the rest with ``ALLOW_ANONYMOUS=true``
  (token verification not measured), once with Lago configured, once without;
  ``BILLING_OUTBOX=false`` (Lago answers at once, so the outbox is never written);
- LiteLLM Proxy (``bench.proxy``), the same litellm version in a virtualenv of its own, with its
  own ``"lago"`` success callback pointed at the same Lago stand-in;
- the client in this process: httpx for the servers, ``litellm.completion`` for the baseline;
- last, the budget ledger (``bench.ledger``) against gcloud's Firestore emulator, started for it.

This module measures and returns ``bench.results`` values; ``bench.report`` renders them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench import ledger, report
from bench.proxy import LiteLLMProxy
from bench.results import (
    ColdStart,
    ColdStarts,
    Comparison,
    ImportTiming,
    Latency,
    Machine,
    Memory,
    PathLatencies,
    Results,
    Rss,
    Samples,
    Side,
    Throughput,
    Timeliness,
)
from standins.processes import ROOT, VENV_BIN, FunctionServer

MODEL = "openai/gpt-4o-mini"
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "benchmark me please"}]
PROVIDER_KEY = "sk-bench-not-a-secret"
PROJECT = "demo-bench"
ANONYMOUS = "anonymous"  # ALLOW_ANONYMOUS bills the uid "anonymous"
PROXY_PAYER = "bench-proxy"  # the proxy bills the request's ``user``
PYTHON = str(VENV_BIN / "python")
# What deploy.sh has the functions read from Secret Manager (with one provider key).
SECRETS = ("LAGO_API_BASE", "LAGO_API_KEY", "LAGO_API_EVENT_CODE", "OPENAI_API_KEY")
SETTLE_S = 5.0


# --- the stand-ins ---------------------------------------------------------------------------


class StandIns:
    """``bench.standins`` in a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.standins"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ports = json.loads(self._stdout.readline())
        self.llm_url: str = ports["llm"]
        self.lago_url: str = ports["lago"]
        self.lago_key: str = ports["lago_key"]
        self.secret_manager: str = ports["secret_manager"]
        self.certs_url: str = ports["certs"]
        self._lock = threading.Lock()

    @property
    def _stdout(self) -> Any:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def ask(self, *command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(" ".join(command) + "\n")
            self.proc.stdin.flush()
            answer: dict[str, Any] = json.loads(self._stdout.readline())
        return answer

    def events(self, payer: str) -> int:
        return int(self.ask("count", payer)["events"])

    def arrivals(self, payer: str, since: float) -> list[float]:
        return [float(t) for t in self.ask("arrivals", payer, repr(since))["arrivals"]]

    def token(self, uid: str) -> str:
        return str(self.ask("token", PROJECT, uid)["token"])

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def server_env(standins: StandIns, *, billed: bool, anonymous: bool = True) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {
        **{key: os.environ[key] for key in keep if key in os.environ},
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CHAT_MODELS": MODEL,
        "OPENAI_API_BASE": standins.llm_url,
        "OPENAI_API_KEY": PROVIDER_KEY,
        "BILLING_OUTBOX": "false",
        "PYTHONUNBUFFERED": "1",
    }
    if anonymous:
        env["ALLOW_ANONYMOUS"] = "true"
    if billed:
        env.update(
            LAGO_API_BASE=standins.lago_url,
            LAGO_API_KEY=standins.lago_key,
            LAGO_API_EVENT_CODE="llm_tokens",
            LAGO_API_CHARGE_BY="user_id",
        )
    return env


def cold_env(standins: StandIns) -> dict[str, str]:
    """A deployed instance's shape: secrets from Secret Manager, tokens verified with Google's
    certificates (the stand-in's, through ``tests/support/cert_override``), payers provisioned."""
    env = server_env(standins, billed=True, anonymous=False)
    values = {
        "LAGO_API_BASE": standins.lago_url,
        "LAGO_API_KEY": standins.lago_key,
        "LAGO_API_EVENT_CODE": "llm_tokens",
        "OPENAI_API_KEY": PROVIDER_KEY,
    }
    for name in SECRETS:
        standins.ask("secret", PROJECT, name, values[name])
        env.pop(name, None)
    env.update(
        SECRET_MANAGER_EMULATOR_HOST=standins.secret_manager,
        SECRETS=" ".join(SECRETS),
        LAGO_PLAN_CODE="bench_plan",
        TEST_ID_TOKEN_CERT_URI=standins.certs_url,
        PYTHONPATH=str(ROOT / "tests" / "support" / "cert_override"),
    )
    return env


def json_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **extra}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


# --- cold start ------------------------------------------------------------------------------


def time_process(code: str, env: dict[str, str]) -> tuple[float, ...]:
    """(wall seconds from spawn to exit, then the figures the code printed on its last line)."""
    started = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    return (wall, *(float(x) for x in out.stdout.strip().splitlines()[-1].split()))


# Exits right after the import: LiteLLM's interpreter teardown (~1 s here) is not part of importing it.
# Prints the import's own wall time and the process's CPU time from its start.
IMPORT_LITELLM = (
    "import os, sys, time; t = time.perf_counter(); import litellm; "
    "print(time.perf_counter() - t, time.process_time()); sys.stdout.flush(); os._exit(0)"
)


def cpu_seconds(server: FunctionServer) -> float:
    """User and system CPU of the server's processes (the master and its worker) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in server.pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


REGISTER_CALLBACK = """
import os, time
os.environ.update(LAGO_API_BASE="http://127.0.0.1:9", LAGO_API_KEY="k", LAGO_API_EVENT_CODE="c")
import litellm
from shared.billing import PendingEvents, register_callback
t = time.perf_counter(); register_callback(PendingEvents("c")); print(time.perf_counter() - t)
"""


def cold_start(standins: StandIns, uid: str) -> ColdStart:
    """Spawn a server and poll it with the first request itself: an authenticated, billed chat."""
    server = FunctionServer(cold_env(standins))
    headers = {"Authorization": f"Bearer {standins.token(uid)}"}
    spawned_wall = time.time()
    spawned = time.perf_counter()
    server.start(wait=False)
    try:
        with httpx.Client(timeout=30) as client:
            while True:
                sent = time.perf_counter()
                try:
                    response = client.post(server.url + CHAT, json=json_body(), headers=headers)
                except httpx.TransportError:
                    if server.proc is not None and server.proc.poll() is not None:
                        raise RuntimeError(f"server exited: {server.logs()[-2000:]}") from None
                    time.sleep(0.002)
                    continue
                done = time.perf_counter()
                break
        cpu = cpu_seconds(server)
        assert response.status_code == 200, response.text
        billed = standins.events(uid) == 1
        lines = {line["message"]: line for line in server.log_lines()}
    finally:
        server.stop()
    timing, secrets = lines["instance_timing"], lines["secrets_loaded"]
    assert secrets["loaded"] == list(SECRETS), secrets
    imports = timing["started_at"] - spawned_wall
    build = timing["build_ms"] / 1000
    return ColdStart(
        total=done - spawned,
        cpu=cpu,
        imports=imports,
        secrets=secrets["elapsed_ms"] / 1000,
        build=build,
        worker=(sent - spawned) - imports - build,
        first_call=done - sent,
        billed=billed,
    )


def cold_starts(standins: StandIns, runs: int) -> ColdStarts:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    imports, colds = [], []
    for n in range(runs):  # alternated, so that load from elsewhere hits both alike
        imports.append(time_process(IMPORT_LITELLM, env))
        colds.append(cold_start(standins, f"bench-cold-{os.getpid()}-{n}"))
    wall, own, _ = min(imports)
    try:
        register: float | None = min(time_process(REGISTER_CALLBACK, env)[1] for _ in range(2))
    except subprocess.CalledProcessError:  # shared/billing's names moved: the row says so
        register = None
    return ColdStarts(colds, ImportTiming(wall, own, min(cpu for _, _, cpu in imports)), register)


# --- per-request latency ---------------------------------------------------------------------


Runner = Callable[[bool, Latency], None]  # (stream?, where to record)


def bare_litellm(llm_url: str) -> Runner:
    """The baseline: ``litellm.completion`` in this process, with the arguments the function uses."""
    import litellm

    litellm.suppress_debug_info = True
    common: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "api_base": llm_url,
        "api_key": PROVIDER_KEY,
        "timeout": 60,
        "num_retries": 0,
        "max_tokens": 4096,
    }

    def run(stream: bool, into: Latency) -> None:
        started = time.perf_counter()
        if not stream:
            litellm.completion(**common)
            into.json.add(time.perf_counter() - started)
            return
        chunks = iter(litellm.completion(**common, stream=True, stream_options={"include_usage": True}))
        next(chunks)
        first = time.perf_counter()
        for _ in chunks:
            pass
        into.ttfb.add(first - started)
        into.last.add(time.perf_counter() - started)

    return run


@dataclass(frozen=True)
class Gateway:
    """How to call one server: its URL, the headers and body fields it needs."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def post(self, client: httpx.Client, stream: bool) -> tuple[float, float, float]:
        """One call: (started, first byte, last byte), ``time.monotonic()`` values."""
        started = time.monotonic()
        body = json_body(stream, **self.extra)
        with client.stream("POST", self.url + CHAT, json=body, headers=self.headers) as response:
            raw = response.iter_raw()
            head = next(raw)
            first = time.monotonic()
            tail = b"".join(raw)
        last = time.monotonic()
        data = head + tail
        ok = data.rstrip().endswith(b"data: [DONE]") if stream else data.endswith(b"}")
        assert response.status_code == 200 and ok, data[-300:]
        return started, first, last


def gateway_runner(gateway: Gateway, client: httpx.Client) -> Runner:
    def run(stream: bool, into: Latency) -> None:
        started, first, last = gateway.post(client, stream)
        if stream:
            into.ttfb.add(first - started)
            into.last.add(last - started)
        else:
            into.json.add(last - started)

    return run


def latencies(standins: StandIns, gateways: dict[str, Gateway], rounds: int, block: int = 25) -> dict[str, Latency]:
    """Sequential requests in blocks of ``block`` of one kind and path, the blocks interleaved.

    Within a block each call follows one like it (steady state for every path alike); interleaving
    the blocks spreads drift in the machine's load (other work runs on this machine) over all paths.
    """
    results = {"bare": Latency(), **{name: Latency() for name in gateways}}
    with httpx.Client(timeout=30) as client:
        runners = {"bare": bare_litellm(standins.llm_url)}
        runners.update({name: gateway_runner(g, client) for name, g in gateways.items()})
        for _ in range(2):  # warm-up: connection pools, lazy imports, caches
            for run in runners.values():
                for stream in (False, True):
                    for _ in range(block):
                        run(stream, Latency())
        for _ in range(max(1, rounds // block)):
            for stream in (False, True):
                for name, run in runners.items():
                    for _ in range(block):
                        run(stream, results[name])
    return results


def lago_round_trip(standins: StandIns, count: int = 300) -> Samples:
    """One event POSTed to the Lago stand-in on a keep-alive connection, as the function's own
    client does, alone: the part of 'billed' that is Lago's answer."""
    samples = Samples()
    headers = {"Authorization": f"Bearer {standins.lago_key}"}
    with httpx.Client(timeout=5, headers=headers) as client:
        for i in range(count + 50):
            event = {
                "transaction_id": f"bench-rtt-{time.time_ns()}-{i}",
                "external_subscription_id": "bench-rtt",
                "code": "llm_tokens",
                "timestamp": f"{time.time():.3f}",
                "properties": {"model": MODEL, "prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
            started = time.perf_counter()
            client.post(standins.lago_url + "/api/v1/events", json={"event": event}).raise_for_status()
            if i >= 50:
                samples.add(time.perf_counter() - started)
    return samples


def timeliness(standins: StandIns, gateway: Gateway, payer: str, calls: int) -> Timeliness:
    """Sequential calls, JSON and stream alternated: was each call's event in Lago when its
    answer ended? Calls do not overlap, so call ``i``'s event is in when ``i + 1`` events of the
    payer had arrived by its last byte. Then wait ``SETTLE_S`` and count again."""
    since = time.monotonic()
    ends = []
    with httpx.Client(timeout=30) as client:
        for i in range(calls):
            ends.append(gateway.post(client, stream=bool(i % 2))[2])
    time.sleep(SETTLE_S)  # the measure itself: what arrives within 5 s of the last answer
    arrivals = sorted(standins.arrivals(payer, since))
    at_end = sum(1 for i, end in enumerate(ends) if sum(1 for a in arrivals if a <= end) >= i + 1)
    return Timeliness(calls, at_end, len(arrivals), SETTLE_S)


# --- throughput and memory -------------------------------------------------------------------


def load(gateway: Gateway, total: int, clients: int, stream: bool) -> tuple[int, float, Samples]:
    samples = Samples()
    lock = threading.Lock()
    remaining = iter(range(total))
    ok = 0

    def worker() -> None:
        nonlocal ok
        with httpx.Client(timeout=30) as client:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                try:
                    started, _, last = gateway.post(client, stream)
                    good = True
                except (AssertionError, httpx.HTTPError):
                    started, last, good = 0.0, 0.0, False
                with lock:
                    if good:
                        samples.add(last - started)
                    ok += good

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return ok, time.perf_counter() - started, samples


def throughput(standins: StandIns, gateway: Gateway, payer: str, total: int, clients: int, stream: bool) -> Throughput:
    before = standins.events(payer)
    ok, seconds, samples = load(gateway, total, clients, stream)
    time.sleep(SETTLE_S if payer == PROXY_PAYER else 0)  # the proxy bills after its answers
    events = standins.events(payer) - before
    return Throughput("stream" if stream else "JSON", total, ok, seconds, samples, events)


def rss_mb(server: FunctionServer) -> Rss:
    """Resident memory of the gunicorn master and its worker (the worker serves the requests)."""
    found = {}
    assert server.proc is not None
    for pid in server.pids():
        status = Path(f"/proc/{pid}/status").read_text()
        kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
        found["master" if pid == server.proc.pid else "worker"] = kb / 1024
    return Rss(worker=found["worker"], master=found["master"])


# --- main ------------------------------------------------------------------------------------


def machine() -> Machine:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return ""

    model = next((line.split(":", 1)[1].strip() for line in run("lscpu").splitlines() if "Model name" in line), "?")
    mem_kb = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    packages = ("litellm", "functions-framework", "gunicorn", "flask", "httpx", "openai", "firebase-admin")
    return Machine(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpus=run("nproc").strip(),
        cpu=model,
        memory=f"{int(mem_kb) / 1024 / 1024:.1f} GiB",
        python=platform.python_version(),
        packages=", ".join(f"{p} {metadata.version(p)}" for p in packages),
        load=" / ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


@contextlib.contextmanager
def servers(standins: StandIns) -> Iterator[dict[str, FunctionServer]]:
    started = {
        "billed": FunctionServer(server_env(standins, billed=True)),
        "unbilled": FunctionServer(server_env(standins, billed=False)),
    }
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@contextlib.contextmanager
def proxy_gateway(standins: StandIns, enabled: bool) -> Iterator[Gateway | None]:
    if not enabled:
        yield None
        return
    proxy = LiteLLMProxy(MODEL, standins.llm_url, PROVIDER_KEY, standins.lago_url, standins.lago_key)
    try:
        proxy.start()
        yield Gateway(proxy.url, {"Authorization": f"Bearer {proxy.master_key}"}, {"user": PROXY_PAYER})
    finally:
        proxy.stop()


def measure(args: argparse.Namespace) -> Results:
    info = machine()
    standins = StandIns()
    try:
        print("cold start ...", file=sys.stderr)
        cold = cold_starts(standins, args.cold_starts)
        with servers(standins) as started, proxy_gateway(standins, not args.no_proxy) as proxy:
            billed = started["billed"]
            gateways = {name: Gateway(s.url) for name, s in started.items()}
            if proxy is not None:
                gateways["proxy"] = proxy
            print("latency ...", file=sys.stderr)
            lat = latencies(standins, gateways, args.rounds)
            lago_rtt = lago_round_trip(standins)
            for stream in (False, True):  # warm-up under concurrency
                load(gateways["billed"], 200, args.clients, stream)
            early = rss_mb(billed)
            print("throughput and memory ...", file=sys.stderr)
            runs = [
                throughput(standins, gateways["billed"], ANONYMOUS, args.requests, args.clients, stream)
                for stream in (False, True)
            ]
            # The heap grows to its working set over the first ~2,000 requests, then stays flat:
            # the throughput run is the warm-up, growth is measured over the next 2,000.
            warm = rss_mb(billed)
            for stream in (False, True):
                load(gateways["billed"], args.requests, args.clients, stream)
            memory = Memory(early, warm, rss_mb(billed), 2 * args.requests)
            comparison = None
            if proxy is not None:
                print("side by side with LiteLLM Proxy ...", file=sys.stderr)
                comparison = compare(standins, gateways["billed"], proxy, lat, runs[0], args)
    finally:
        standins.stop()
    print("budget ledger ...", file=sys.stderr)  # last, alone: its emulator's JVM would load the rest
    spend = ledger.measure(args.ledger_seconds)
    paths = PathLatencies(bare=lat["bare"], unbilled=lat["unbilled"], billed=lat["billed"])
    return Results(info, args.rounds, args.clients, cold, paths, lago_rtt, runs, memory, comparison, spend)


def compare(
    standins: StandIns,
    function: Gateway,
    proxy: Gateway,
    lat: dict[str, Latency],
    function_json: Throughput,
    args: argparse.Namespace,
) -> Comparison:
    proxy_json = throughput(standins, proxy, PROXY_PAYER, args.requests, args.clients, stream=False)
    return Comparison(
        function=Side(
            "function (billed)",
            lat["billed"],
            function_json,
            timeliness(standins, function, ANONYMOUS, args.billing_calls),
        ),
        proxy=Side(
            "LiteLLM Proxy (lago callback)",
            lat["proxy"],
            proxy_json,
            timeliness(standins, proxy, PROXY_PAYER, args.billing_calls),
        ),
        clients=args.clients,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=300, help="sequential requests of each kind (default 300)")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000, help="per kind in the throughput run (JSON, stream)")
    parser.add_argument("--billing-calls", type=int, default=150, help="sequential calls counted in Lago, per side")
    parser.add_argument("--ledger-seconds", type=float, default=20.0, help="the budget ledger's run (default 20 s)")
    parser.add_argument("--no-proxy", action="store_true", help="leave LiteLLM Proxy out")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    results = measure(args)
    table = report.render(results)
    print(table)
    if not args.no_write:
        report.write_doc(table)
        print(f"\nwritten to {report.DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
