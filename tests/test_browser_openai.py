"""The official ``openai`` npm package in Chromium, calling the chat function cross-origin from a
page of an allowed origin: the browser's own CORS preflight (with the package's ``x-stainless-*``
headers) must pass, and the streamed answer, its usage and ``x-request-id`` must reach the page."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route

from standins.lago import FakeLago
from standins.processes import ROOT, FunctionServer
from tests.conftest import User
from tests.support.chromium import chromium

ALLOWED_ORIGIN = "http://localhost:5002"  # in the chat_server's CORS_ORIGINS
OTHER_ORIGIN = "http://localhost:5999"  # not in it


@pytest.fixture(scope="module")
def openai_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test's page script: tests/clients/openai_browser.mjs with the pinned `openai` package."""
    out = tmp_path_factory.mktemp("bundle") / "openai_browser.js"
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    source = ROOT / "tests" / "clients" / "openai_browser.mjs"
    subprocess.run(
        [str(esbuild), str(source), "--bundle", "--format=esm", f"--outfile={out}", "--log-level=warning"],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return Path(out).read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def run_in_page(
    browser: Browser, origin: str, script: str, server: FunctionServer, user: User
) -> tuple[object, list[int]]:
    """Open a page served (by Playwright, no server) at ``origin`` and run the streamed call there.

    Returns the page's result and the statuses of the CORS preflights Chromium sent (seen by CDP).
    """
    # The page is served by Playwright's router, so Chromium counts it as a public address; the
    # user's grant of local network access stands in for the page being served from this machine.
    context = browser.new_context(permissions=["local-network-access"])
    page_html = '<!doctype html><html><head><script type="module" src="/openai.js"></script></head><body></body></html>'

    def serve(route: Route) -> None:
        if route.request.url.endswith("/openai.js"):
            route.fulfill(status=200, content_type="text/javascript", body=script)
        else:
            route.fulfill(status=200, content_type="text/html", body=page_html)

    context.route(f"{origin}/**", serve)
    try:
        page = context.new_page()
        page.goto(f"{origin}/")
        page.wait_for_function("typeof window.runStream === 'function'", timeout=30_000)
        # Routing intercepts the page's requests, and an intercepted request gets no real CORS
        # preflight: with the page loaded, stop routing so that Chromium does its own.
        context.unroute_all(behavior="wait")
        preflights: list[int] = []
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on(
            "Network.responseReceived",
            lambda event: preflights.append(event["response"]["status"]) if event["type"] == "Preflight" else None,
        )
        result = page.evaluate(
            "([url, token]) => window.runStream(url, token).catch((e) => ({ error: String(e) }))",
            [f"{server.url}/v1", user.token],
        )
        return result, preflights
    finally:
        context.close()


def test_openai_npm_package_streams_from_an_allowed_origin(
    browser: Browser, openai_bundle: str, chat_server: FunctionServer, fake_lago: FakeLago, user: User
) -> None:
    result, preflights = run_in_page(browser, ALLOWED_ORIGIN, openai_bundle, chat_server, user)
    assert preflights == [204], "the browser's own preflight passed"
    assert isinstance(result, dict) and "error" not in result, result
    assert result["text"] == "word0 word1 word2 word3 word4 word5"
    assert result["usage"]["completion_tokens"] == 6 and result["usage"]["cost"] > 0
    assert [e["transaction_id"] for e in fake_lago.events(user.uid)] == [result["requestId"]]


def test_openai_npm_package_is_stopped_by_the_preflight_elsewhere(
    browser: Browser, openai_bundle: str, chat_server: FunctionServer, fake_lago: FakeLago, user: User
) -> None:
    result, preflights = run_in_page(browser, OTHER_ORIGIN, openai_bundle, chat_server, user)
    assert preflights == [403]
    assert isinstance(result, dict) and "Connection error" in str(result.get("error")), result
    assert fake_lago.events(user.uid) == []
