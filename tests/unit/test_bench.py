"""The benchmark's pure parts: the scale model's arithmetic and the report's verdicts (no servers)."""

from __future__ import annotations

import math

import pytest

from bench import report, scale
from bench.results import (
    ColdStart,
    ColdStarts,
    Comparison,
    ImportTiming,
    Latency,
    LedgerRun,
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


def _index(name: str) -> int:
    names = [p.limit for p in scale.pressures(1.0, scale.Limits(), scale.Mix())]
    return next(i for i, limit in enumerate(names) if limit.startswith(name))


def test_lago_event_limit_breaks_at_500_calls_per_second_whatever_the_instances() -> None:
    for instances in (20, 1000):
        limits = scale.Limits(max_instances=instances)
        assert scale.breaking_rps(_index("Lago event"), limits, scale.Mix()) == pytest.approx(500, rel=0.01)


def test_threads_below_concurrency_is_broken_at_any_load_and_fixed_by_threads() -> None:
    index = _index("requests in flight")
    assert scale.breaking_rps(index, scale.Limits(threads=4, concurrency=8), scale.Mix()) == 0
    assert math.isinf(scale.breaking_rps(index, scale.Limits(threads=8, concurrency=8), scale.Mix()))


def test_an_instance_is_bound_by_its_threads_when_the_provider_is_slow() -> None:
    mix = scale.Mix(stream_share=0.0, json_s=2.0, cpu_ms=10)
    assert scale.instance_rps(scale.Limits(threads=8, concurrency=8), mix) == pytest.approx(4.0)
    assert (
        scale.instance_rps(scale.Limits(threads=8, concurrency=8), scale.Mix(json_s=0.001, stream_share=0, cpu_ms=10))
        == 100
    )


def test_the_replay_drains_an_hour_at_50_calls_per_second_in_14_scheduled_runs() -> None:
    scheduled, back_to_back = scale.drain_s(50, scale.Mix())
    assert scheduled == pytest.approx(180_000 / (272 * 50) * 300)  # ~66 min: PERFORMANCE.md's "about 70"
    assert back_to_back == pytest.approx(180_000 / 272)
    assert scheduled > back_to_back


def test_the_project_caps_ledger_document_passes_a_documents_write_rate_past_two_busy_instances() -> None:
    index = _index("ledger writes/s on the project cap")
    mix = scale.Mix()
    at = scale.breaking_rps(index, scale.Limits(), mix)
    assert at == pytest.approx(2 * scale.instance_rps(scale.Limits(), mix), rel=0.01)


def _samples(*values: float) -> Samples:
    return Samples(list(values))


def _latency(ms: float) -> Latency:
    return Latency(_samples(ms, ms), _samples(ms, ms), _samples(2 * ms, 2 * ms))


def _results(function_ms: float, proxy_ms: float, at_end: int) -> Results:
    cold = ColdStarts([ColdStart(3.0, 3.0, 2.5, 0.05, 0.05, 0.2, 0.2, True)], ImportTiming(2.8, 2.7, 3.1), 0.02)
    run = Throughput("JSON", 100, 100, 1.0, _samples(5, 6), 100)
    slow = Throughput("JSON", 100, 100, 4.0, _samples(40, 50), 100)
    side = Side("function", _latency(function_ms), run, Timeliness(10, at_end, 10, 5.0))
    peer = Side("proxy", _latency(proxy_ms), slow, Timeliness(10, 0, 10, 5.0))
    return Results(
        Machine("now", "2", "cpu", "1 GiB", "3.11", "litellm", "0"),
        25,
        8,
        cold,
        PathLatencies(_latency(3), _latency(4), _latency(5)),
        _samples(1, 1),
        [run],
        Memory(Rss(300, 200), Rss(310, 200), Rss(311, 200), 2000),
        Comparison(side, peer, 8),
        _ledger(writes=8, live_p50_ms=0.1),
    )


def _ledger(writes: int, live_p50_ms: float | None) -> LedgerRun:
    live = 0 if live_p50_ms is None else 480
    return LedgerRun(1000, 20.0, 2, 200.0, writes, live, live_p50_ms, None if live_p50_ms is None else 0.2, 0.1, 30.0)


def test_report_puts_the_proxy_ratios_first_with_their_verdicts() -> None:
    text = report.render(_results(function_ms=4, proxy_ms=10, at_end=10))
    assert text.index("Side by side with LiteLLM Proxy") < text.index("Targets against bare LiteLLM")
    assert "| JSON p50 ≤ 0.5 × the proxy's | 0.40 × | met |" in text
    assert "| every event in Lago at response end | 10 of 10 | met |" in text


def test_report_flags_a_missed_proxy_target() -> None:
    text = report.render(_results(function_ms=6, proxy_ms=10, at_end=9))
    assert "| JSON p50 ≤ 0.5 × the proxy's | 0.60 × | **missed** |" in text
    assert "| every event in Lago at response end | 9 of 10 | **missed** |" in text


def test_report_ends_with_the_budget_ledger_against_its_targets_and_the_emulator_caveat() -> None:
    text = report.render(_results(function_ms=4, proxy_ms=10, at_end=10))
    section = text[text.index("### Budget ledger") :]
    assert (
        "| ≤ 2 Firestore writes/s per payer at 50 requests/s for one team payer | 0.40/s (8 writes) | met |" in section
    )
    assert "| < 1 ms added p50 with a live lease | 0.100 ms | met |" in section
    assert "only the write rate and the in-memory path" in section
    assert "Measured in the same run" in section


def test_ledger_section_flags_too_many_writes_and_no_live_lease_and_says_how_it_was_measured() -> None:
    text = "\n".join(report.ledger(_ledger(writes=60, live_p50_ms=None), "Measured by `bench.ledger --seconds 20`"))
    assert text.count("Measured by `bench.ledger --seconds 20`") == 1
    assert "| 3.00/s (60 writes) | **missed** |" in text
    assert "| < 1 ms added p50 with a live lease | no request served from a live lease | **missed** |" in text
    assert "| served from a live lease (in memory) | 0 | - | - |" in text
