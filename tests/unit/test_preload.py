"""What the instance imports at cold start for LiteLLM's first call (shared/llm.preload)."""

from __future__ import annotations

import importlib
import threading

from shared import llm


def test_every_first_call_module_exists_in_the_pinned_litellm() -> None:
    # A LiteLLM upgrade that moves one only logs at cold start: this test names it.
    for name in llm._FIRST_CALL_MODULES:
        importlib.import_module(name)


def test_preload_starts_no_thread_before_the_fork() -> None:
    before = {t.ident for t in threading.enumerate()}
    llm.preload()
    assert {t.ident for t in threading.enumerate()} <= before
