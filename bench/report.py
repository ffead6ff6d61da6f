"""Renders ``bench.results.Results`` as the Markdown tables of docs/PERFORMANCE.md."""

from __future__ import annotations

from standins.processes import ROOT

from .results import (
    ColdStarts,
    Comparison,
    Latency,
    LedgerRun,
    Memory,
    PathLatencies,
    Results,
    Samples,
    Throughput,
)

DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# The targets, as numbers, so that the table and the verdicts cannot disagree.
OVERHEAD_MS = 3.0  # billed JSON p50 over bare LiteLLM
TTFB_MS = 5.0  # billed stream first byte over bare LiteLLM
COLD_RATIO = 1.15  # cold start to the first billed answer over `import litellm`
RSS_MB = 5.0  # worker growth over 2,000 requests after the warm-up
PROXY_P50 = 0.5  # function p50 over the proxy's, at most
PROXY_RPS = 2.0  # function throughput over the proxy's, at least
LEDGER_RATE = 50  # requests/s of one team payer, at which:
LEDGER_WRITES_S = 2.0  # Firestore writes per second for the payer, at most
LEDGER_LIVE_MS = 1.0  # added p50 of a request served from a live lease, under


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(results: Results) -> str:
    m = results.machine
    head = [
        f"Measured {m.date} on {m.cpus} × {m.cpu}, {m.memory}; Python {m.python}; {m.packages}. "
        f"Load average at the start (1/5/15 min): {m.load}. The machine is shared: other "
        "processes ran on the same cores during the run.",
        "",
    ]
    sections = [
        head,
        _comparison(results.comparison) if results.comparison else ["*LiteLLM Proxy not run (`--no-proxy`).*", ""],
        _targets(results),
        _cold(results.cold),
        _latency(results.latency, results.rounds, results.lago_rtt),
        _throughput(results.throughput, results.clients),
        _memory(results.memory),
        ledger(results.ledger, "Measured in the same run, last and alone (`bench/run`)"),
    ]
    return "\n".join(line for section in sections for line in section).rstrip()


def _comparison(c: Comparison) -> list[str]:
    f, p = c.function, c.proxy
    p50 = f.latency.json.p50 / p.latency.json.p50
    rps = f.throughput.rps / p.throughput.rps
    ttfb = f.latency.ttfb.p50 / p.latency.ttfb.p50
    all_in = f.timeliness.at_end == f.timeliness.calls

    def row(label: str, fv: str, pv: str, ratio: str) -> str:
        return f"| {label} | {ratio} | {fv} | {pv} |"

    lines = [
        "### Side by side with LiteLLM Proxy",
        "",
        "Same LLM and Lago stand-ins, same client, same run. The function bills synchronously before "
        "its last byte; the proxy uses LiteLLM's own `lago` success callback "
        "(`LAGO_API_CHARGE_BY=end_user_id`, the request's `user`).",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| JSON p50 ≤ {PROXY_P50} × the proxy's | {p50:.2f} × | {verdict(p50 <= PROXY_P50)} |",
        f"| throughput with {c.clients} clients ≥ {PROXY_RPS} × the proxy's | {rps:.2f} × | {verdict(rps >= PROXY_RPS)} |",
        f"| every event in Lago at response end | {f.timeliness.at_end} of {f.timeliness.calls} | {verdict(all_in)} |",
        f"| stream first byte no later than the proxy's (p50) | {ttfb:.2f} × | {verdict(ttfb <= 1)} |",
        "",
        f"| | function ÷ proxy | {f.name} | {p.name} |",
        "|---|---|---|---|",
    ]
    for pick, label in (("json", "JSON"), ("ttfb", "stream first byte"), ("last", "stream last byte")):
        fs, ps = _samples(f.latency, pick), _samples(p.latency, pick)
        lines.append(
            row(f"{label} p50, sequential", f"{fs.p50:.2f} ms", f"{ps.p50:.2f} ms", f"{fs.p50 / ps.p50:.2f} ×")
        )
        lines.append(
            row(f"{label} p99, sequential", f"{fs.p99:.2f} ms", f"{ps.p99:.2f} ms", f"{fs.p99 / ps.p99:.2f} ×")
        )
    ft, pt = f.throughput, p.throughput
    lines += [
        row(f"JSON requests/s, {c.clients} clients", f"{ft.rps:.0f}", f"{pt.rps:.0f}", f"{rps:.2f} ×"),
        row(
            f"JSON p50 / p99 with {c.clients} clients",
            f"{ft.latency.p50:.1f} / {ft.latency.p99:.1f} ms",
            f"{pt.latency.p50:.1f} / {pt.latency.p99:.1f} ms",
            f"{ft.latency.p50 / pt.latency.p50:.2f} ×",
        ),
        row(
            f"events in Lago for the {c.clients}-client run ({ft.requests} calls)",
            f"{ft.events}",
            f"{pt.events} (counted {p.timeliness.settle_s:.0f} s after)",
            "",
        ),
    ]
    for side_label, attr in (("at response end", "at_end"), (f"{f.timeliness.settle_s:.0f} s after", "settled")):
        lines.append(
            row(
                f"events in Lago {side_label}, sequential (JSON and stream alternated)",
                f"{getattr(f.timeliness, attr)} of {f.timeliness.calls}",
                f"{getattr(p.timeliness, attr)} of {p.timeliness.calls}",
                "",
            )
        )
    return [*lines, ""]


def _samples(latency: Latency, pick: str) -> Samples:
    samples: Samples = getattr(latency, pick)
    return samples


def _targets(results: Results) -> list[str]:
    lat, cold = results.latency, results.cold
    bare, billed = lat.bare, lat.billed
    over_json = billed.json.p50 - bare.json.p50
    over_ttfb = billed.ttfb.p50 - bare.ttfb.p50
    growth = results.memory.growth
    best = cold.best
    return [
        "### Targets against bare LiteLLM",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| non-streaming overhead (billing on) ≤ {OVERHEAD_MS:g} ms p50 over bare LiteLLM | {over_json:+.2f} ms "
        f"({billed.json.p50:.2f} vs {bare.json.p50:.2f} ms) | {verdict(over_json <= OVERHEAD_MS)} |",
        f"| cold start to the first billed answer ≤ {COLD_RATIO} × `import litellm` alone | {cold.ratio:.2f} × "
        f"({ms(best.total)} vs {ms(cold.import_litellm.wall)}); CPU time {cold.cpu_ratio:.2f} × "
        f"| {verdict(cold.ratio <= COLD_RATIO)} |",
        f"| streaming time to first byte within {TTFB_MS:g} ms of bare LiteLLM | {over_ttfb:+.2f} ms "
        f"({billed.ttfb.p50:.2f} vs {bare.ttfb.p50:.2f} ms) | {verdict(over_ttfb <= TTFB_MS)} |",
        f"| RSS growth < {RSS_MB:g} MB over {results.memory.requests:,} requests (after the warm-up) "
        f"| {growth:+.1f} MB | {verdict(growth < RSS_MB)} |",
        "",
    ]


def _cold(cold: ColdStarts) -> list[str]:
    c = cold.best
    register = ms(cold.register_callback) if cold.register_callback is not None else "not measured"
    return [
        f"### Cold start to the first billed answer (best of {len(cold.runs)} each, alternated; "
        f"median {ms(cold.median_total)})",
        "",
        "The first request is authenticated (an RS256 ID token checked against Google's certificates, "
        "served by a stand-in), provisions its payer in Lago and is billed; the secrets come from the "
        "Secret Manager stand-in, as `deploy.sh` configures a deployed instance.",
        "",
        "| part | time |",
        "|---|---|",
        f"| `python -c 'import litellm'`, spawn to the end of the import (baseline) | {ms(cold.import_litellm.wall)} "
        f"(the import itself: {ms(cold.import_litellm.own)}) |",
        f"| process start to first billed answer | {ms(c.total)} ({cold.ratio:.2f} × baseline; billed: "
        f"{'yes' if c.billed else 'NO'}) |",
        f"| CPU time: `import litellm` process vs the server's processes at the first answer (best of each) "
        f"| {ms(cold.import_litellm.cpu)} vs {ms(min(r.cpu for r in cold.runs))} ({cold.cpu_ratio:.2f} ×) |",
        f"| · imports: interpreter, secrets, functions-framework, flask, litellm, shared | {ms(c.imports)} |",
        f"| · · of which reading the secrets from Secret Manager (`secrets_loaded` elapsed_ms) | {ms(c.secrets)} |",
        f"| · `start_instance` (settings, models, auth, Lago callback and clients) | {ms(c.build)} |",
        f"| · · of which Lago callback registration (timed alone in another process) | {register} |",
        f"| · functions-framework and gunicorn start-up: app, bind, fork of the worker | {ms(c.worker)} |",
        f"| · first request, client-measured (token check, Lago provisioning, LiteLLM, billing) | {ms(c.first_call)} |",
        "",
    ]


def _latency(lat: PathLatencies, rounds: int, lago_rtt: Samples) -> list[str]:
    lines = [
        f"### Per-request latency, sequential ({rounds} requests of each kind, interleaved)",
        "",
        "| path | JSON p50 | JSON p99 | stream first byte p50 | p99 | stream last byte p50 | p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    bare = lat.bare
    for x, label in (
        (bare, "bare `litellm.completion`"),
        (lat.unbilled, "function, no billing"),
        (lat.billed, "function, billed"),
    ):
        lines.append(
            f"| {label} | {x.json.p50:.2f} | {x.json.p99:.2f} | {x.ttfb.p50:.2f} | {x.ttfb.p99:.2f} "
            f"| {x.last.p50:.2f} | {x.last.p99:.2f} |"
        )
    for x, label in ((lat.unbilled, "overhead, no billing"), (lat.billed, "overhead, billed")):
        lines.append(
            f"| {label} | {x.json.p50 - bare.json.p50:+.2f} | {x.json.p99 - bare.json.p99:+.2f} "
            f"| {x.ttfb.p50 - bare.ttfb.p50:+.2f} | {x.ttfb.p99 - bare.ttfb.p99:+.2f} "
            f"| {x.last.p50 - bare.last.p50:+.2f} | {x.last.p99 - bare.last.p99:+.2f} |"
        )
    return [
        *lines,
        "",
        "All in ms. Overhead = function minus bare LiteLLM at the same percentile. Of the billed overhead, "
        "one event's round trip to the Lago stand-in (its Python HTTP server and schema check included), "
        f"timed alone: p50 {lago_rtt.p50:.2f} ms, p99 {lago_rtt.p99:.2f} ms.",
        "",
    ]


def _throughput(runs: list[Throughput], clients: int) -> list[str]:
    lines = [
        f"### Throughput, {clients} concurrent clients, billed",
        "",
        "| kind | requests | ok | requests/s | p50 ms | p99 ms | events in Lago |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in runs:
        lines.append(
            f"| {t.kind} | {t.requests} | {t.ok} | {t.rps:.0f} | {t.latency.p50:.1f} | {t.latency.p99:.1f} "
            f"| {t.events} {'= ok' if t.events == t.ok else '≠ ok'} |"
        )
    return [*lines, ""]


def _memory(m: Memory) -> list[str]:
    return [
        "### Memory (RSS of the gunicorn worker, which serves the requests, and of the master)",
        "",
        "| when | worker | master |",
        "|---|---|---|",
        f"| after the latency runs and a concurrent warm-up | {m.early.worker:.1f} MB | {m.early.master:.1f} MB |",
        f"| after the throughput run (the warm-up) | {m.warm.worker:.1f} MB | {m.warm.master:.1f} MB |",
        f"| after {m.requests:,} more | {m.after.worker:.1f} MB | {m.after.master:.1f} MB |",
        f"| growth over the last {m.requests:,} | {m.growth:+.1f} MB | |",
        f"| growth during the warm-up | {m.warm.worker - m.early.worker:+.1f} MB | |",
        "",
    ]


def ledger(run: LedgerRun, measured: str) -> list[str]:
    """The "Budget ledger" section; ``measured`` says how and where its figures were taken."""
    live = run.live_p50_ms
    live_ok = live is not None and live < LEDGER_LIVE_MS
    live_text = "no request served from a live lease" if live is None else f"{live:.3f} ms"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return [
        "### Budget ledger (Firestore writes per payer, latency added by `reserve`)",
        "",
        f"{measured}: one team payer sends {run.requests} requests in {run.seconds:.1f} s ({run.rps:.0f}/s) "
        f"over {run.instances} instances (each its own `SpendLeases` and Firestore client), against gcloud's "
        f"Firestore emulator; each request reserves its worst case, waits {run.call_ms:.0f} ms (the model call) "
        "and settles its real cost. **The emulator's transactions are far slower than Firestore's: only the "
        "write rate and the in-memory path (a request served from a live lease) are meaningful here**; a "
        "request that waits for an exchange waits for the emulator.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| ≤ {LEDGER_WRITES_S:g} Firestore writes/s per payer at {LEDGER_RATE} requests/s for one team payer "
        f"| {run.writes_per_s:.2f}/s ({run.writes} writes) | {verdict(run.writes_per_s <= LEDGER_WRITES_S)} |",
        f"| < {LEDGER_LIVE_MS:g} ms added p50 with a live lease | {live_text} | {verdict(live_ok)} |",
        "",
        "| `reserve` | requests | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| served from a live lease (in memory) | {run.live_requests} | {ms(run.live_p50_ms)} "
        f"| {ms(run.live_p99_ms)} |",
        f"| all requests (an exchange waits for its transaction) | {run.requests} | {ms(run.all_p50_ms)} "
        f"| {ms(run.all_p99_ms)} |",
    ]


def write_doc(table: str) -> None:
    block = f"{BEGIN}\n{table}\n{END}"
    if DOC.exists() and BEGIN in DOC.read_text():
        head, _, rest = DOC.read_text().partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(head + block + tail)
    else:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(f"# Performance\n\nRegenerate with `bench/run`.\n\n{block}\n")
