"""The replay's pacer (``replay._Pacer``, no server), on a clock of the test's own: requests to
Lago spaced to its rate from any number of threads, a 429's reset waited out, and no slot taken
past the run's deadline. The replay against the Lago stand-in: tests/test_replay.py."""

from __future__ import annotations

import threading

from shared.replay import _Pacer


class Clock:
    """``time.monotonic`` and ``time.sleep`` for the pacer: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def pacer(clock: Clock, per_second: float = 4) -> _Pacer:
    return _Pacer(per_second, clock=clock, sleep=clock.sleep)


def test_requests_are_spaced_to_the_rate() -> None:
    clock = Clock()
    paced = pacer(clock, per_second=4)
    starts = []
    for _ in range(5):
        assert paced.wait(deadline=clock.now + 60)
        starts.append(clock.now)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)] == [0.25] * 4
    assert clock.slept[0] == 0.0, "the first request goes at once"


def test_an_idle_pacer_does_not_make_the_next_request_wait() -> None:
    clock = Clock()
    paced = pacer(clock)
    paced.wait(deadline=1e9)
    clock.now += 30  # nothing to send for a while
    paced.wait(deadline=1e9)
    assert clock.slept == [0.0, 0.0]


def test_no_slot_is_taken_past_the_deadline() -> None:
    clock = Clock()
    paced = pacer(clock, per_second=1)
    assert paced.wait(deadline=clock.now + 1.5)
    assert paced.wait(deadline=clock.now + 0.5) is False, "the next slot is a second away"
    assert clock.slept == [0.0], "and refusing it slept nothing"
    assert paced.wait(deadline=clock.now + 1.5), "the refused slot is still free"


def test_a_pause_holds_every_slot_until_the_reset_and_never_shortens_a_longer_one() -> None:
    clock = Clock()
    paced = pacer(clock, per_second=10)
    paced.pause(5.0)  # Lago's 429: X-RateLimit-Reset in 5 s
    paced.pause(1.0)
    began = clock.now
    assert paced.wait(deadline=began + 60)
    assert clock.now == began + 5.0


def test_threads_get_distinct_slots() -> None:
    now, waits = 100.0, []  # a clock that stands still: each thread's wait is its slot minus now
    paced = _Pacer(4, clock=lambda: now, sleep=waits.append)
    threads = [threading.Thread(target=paced.wait, args=(1e9,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(waits) == [0.25 * i for i in range(8)]
