"""The rate limits' counting (``shared/rate_limits.py``, no server): per-minute windows and
concurrency slots, with a clock of the test's own and the product's in-memory store
(``LocalRateStore``: the same transactions as Firestore's). The 429's shape through the running
server, with OpenAI's client: tests/test_rate_limits.py."""

from __future__ import annotations

import pytest

from shared.errors import ApiError, ErrorCode
from shared.rate_limits import SLOT_TTL_S, LocalRateStore, RateLimits, take_slice, take_slot


class Clock:
    """Seconds since the epoch, moved by hand; starts 10 s into a UTC minute."""

    def __init__(self, now: float = 1_700_000_040.0 + 10) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits(
    store: LocalRateStore | None = None,
    clock: Clock | None = None,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    max_concurrent: int | None = None,
) -> RateLimits:
    return RateLimits(
        store or LocalRateStore(), rpm=rpm, tpm=tpm, max_concurrent=max_concurrent, clock=clock or Clock()
    )


def refusal(limiter: RateLimits, keys: list[str], tokens: int = 1) -> ApiError:
    with pytest.raises(ApiError) as raised:
        limiter.admit(keys, tokens)
    return raised.value


# --- the slice and slot arithmetic --------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "granted", "need", "want", "got"),
    [
        (100, 0, 1, 10, 10),  # what it wants, when that is at most half of what is left
        (100, 0, 1, 500, 50),  # at most half of what is left: one instance cannot hold it all
        (100, 60, 30, 30, 30),  # a need bigger than half still fits when it is left
        (100, 90, 20, 20, 0),  # a need that does not fit gets nothing
        (100, 99, 1, 50, 1),  # the last one
    ],
)
def test_a_slice_is_the_need_or_more_up_to_half_of_what_is_left(
    limit: int, granted: int, need: int, want: int, got: int
) -> None:
    assert take_slice(limit, granted, need, want) == got


def test_a_slot_is_refused_at_the_limit_and_expired_holders_are_dropped_first() -> None:
    slots: dict[str, tuple[int, float]] = {"a": (1, 100.0), "b": (1, 50.0)}
    assert not take_slot(dict(slots), "me", 2, now=10.0)
    assert take_slot(slots, "me", 2, now=60.0)  # b's slot expired at 50: its instance is gone
    assert slots == {"a": (1, 100.0), "me": (1, 60.0 + SLOT_TTL_S)}


# --- requests per minute --------------------------------------------------------------------------


def test_each_admitted_request_says_what_is_left_and_the_one_past_the_rpm_gets_a_429() -> None:
    clock = Clock()
    limiter = limits(clock=clock, rpm=4)
    permits = [limiter.admit(["payer"], 1) for _ in range(4)]
    assert [p.headers["x-ratelimit-remaining-requests"] for p in permits] == ["3", "2", "1", "0"]
    assert {p.headers["x-ratelimit-limit-requests"] for p in permits} == {"4"}
    assert permits[0].headers["x-ratelimit-reset-requests"] == "50s"  # the minute ends in 50 s
    error = refusal(limiter, ["payer"])
    assert error.code is ErrorCode.RATE_LIMIT_REQUESTS and "CHAT_RATE_LIMIT_RPM" in error.message
    assert error.headers["Retry-After"] == "50"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_new_minute_brings_a_fresh_allowance() -> None:
    clock = Clock()
    limiter = limits(clock=clock, rpm=2)
    limiter.admit(["payer"], 1)
    limiter.admit(["payer"], 1)
    refusal(limiter, ["payer"])
    clock.now += 50  # the next UTC minute
    assert limiter.admit(["payer"], 1).headers["x-ratelimit-remaining-requests"] == "1"


def test_a_burst_across_a_minute_boundary_passes_at_most_twice_the_limit() -> None:
    clock = Clock(1_700_000_040.0 + 59)
    limiter = limits(clock=clock, rpm=3)
    admitted = 0
    for _ in range(10):
        clock.now += 0.2  # the burst crosses into the next minute
        try:
            limiter.admit(["payer"], 1)
            admitted += 1
        except ApiError:
            pass
    assert admitted == 6, "each of the two windows holds the limit, no more"


def test_payers_have_windows_of_their_own() -> None:
    limiter = limits(rpm=1)
    limiter.admit(["alice"], 1)
    refusal(limiter, ["alice"])
    limiter.admit(["bob"], 1)


def test_in_team_mode_the_tightest_key_decides_and_a_refusal_names_the_limit() -> None:
    limiter = limits(rpm=2)
    limiter.admit(["team", "uid-a"], 1)
    permit = limiter.admit(["team", "uid-b"], 1)
    assert permit.headers["x-ratelimit-remaining-requests"] == "0"  # the team's, the tighter key
    refusal(limiter, ["team", "uid-c"])


def test_instances_sharing_the_store_never_let_more_than_the_limit_through() -> None:
    store, clock = LocalRateStore(), Clock()
    instances = [limits(store, clock, rpm=10) for _ in range(3)]
    admitted = 0
    for n in range(30):
        clock.now += 0.1
        try:
            instances[n % 3].admit(["payer"], 1)
            admitted += 1
        except ApiError:
            pass
    assert admitted <= 10


def test_a_busy_payer_costs_a_write_per_slice_not_per_request() -> None:
    store, clock = LocalRateStore(), Clock()
    limiter = limits(store, clock, rpm=10_000)
    for _ in range(200):
        clock.now += 0.01  # 100 requests a second
        limiter.admit(["payer"], 1)
    assert store.writes < 20, store.writes


# --- tokens per minute ---------------------------------------------------------------------------


def test_tokens_past_the_tpm_are_refused_as_tokens_and_counted_as_asked() -> None:
    limiter = limits(tpm=3000)
    permit = limiter.admit(["payer"], 2000)
    assert permit.headers["x-ratelimit-remaining-tokens"] == "1000"
    error = refusal(limiter, ["payer"], 2000)
    assert error.code is ErrorCode.RATE_LIMIT_TOKENS and "CHAT_RATE_LIMIT_TPM" in error.message
    assert int(error.headers["x-ratelimit-remaining-tokens"]) < 2000
    assert limiter.admit(["payer"], 1000).headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_need_refused_this_minute_is_refused_again_without_asking_the_store() -> None:
    store = LocalRateStore()
    limiter = limits(store, tpm=3000)
    limiter.admit(["payer"], 2000)
    refusal(limiter, ["payer"], 2000)
    writes = store.writes
    refusal(limiter, ["payer"], 2500)
    assert store.writes == writes


# --- requests in flight ------------------------------------------------------------------------


def test_requests_in_flight_past_the_cap_are_refused_and_a_release_frees_the_slot() -> None:
    limiter = limits(max_concurrent=2)
    first, _ = limiter.admit(["payer"], 1), limiter.admit(["payer"], 1)
    error = refusal(limiter, ["payer"])
    assert error.code is ErrorCode.RATE_LIMIT_REQUESTS and "CHAT_MAX_CONCURRENT" in error.message
    assert error.headers["Retry-After"] == "1"
    first.release()
    first.release()  # a second release (an error path after the stream ended) frees nothing more
    limiter.admit(["payer"], 1)
    refusal(limiter, ["payer"])


def test_a_team_request_refused_for_one_key_gives_back_the_slots_it_took() -> None:
    store = LocalRateStore()
    limiter = limits(store, max_concurrent=1)
    limiter.admit(["uid-a"], 1)  # uid-a is busy
    refusal(limiter, ["team", "uid-a"])  # took the team's slot, then uid-a had none
    limiter.admit(["team", "uid-b"], 1)  # so the team's slot is free again


def test_an_instance_keeps_its_idle_slot_while_busy_and_returns_all_when_its_last_request_ends() -> None:
    store = LocalRateStore()
    limiter = limits(store, max_concurrent=5)
    held = [limiter.admit(["payer"], 1) for _ in range(2)]
    writes = store.writes
    held.pop().release()
    again = limiter.admit(["payer"], 1)  # reuses the idle slot: no write
    assert store.writes == writes
    for permit in [*held, again]:
        permit.release()
    other = limits(store, max_concurrent=1)  # another instance finds every slot returned
    other.admit(["payer"], 1)


def test_no_limit_set_admits_without_headers_or_writes() -> None:
    store = LocalRateStore()
    permit = limits(store).admit(["payer"], 10**9)
    assert permit.headers == {} and store.writes == 0
