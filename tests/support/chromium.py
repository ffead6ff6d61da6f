"""Debian's Chromium, driven by Playwright (Playwright's own browser downloads are never used)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from standins.chromium import CHROMIUM, CHROMIUM_ARGS


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the block; a clear failure if the machine has none."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
