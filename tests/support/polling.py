"""The one polling helper the tests use, for what changes on its own a moment later (a write the
page made reaching Firestore, a budget a background refresh re-reads) where no event can be
awaited. It fails the test when the time is up, saying what it last saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(read: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout: float = 10) -> T:
    """``read()`` until ``done`` holds for what it returns, and return that; fail past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: still not so after {timeout} s; last read: {value!r:.500}")
        time.sleep(0.1)
