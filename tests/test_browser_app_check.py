"""The chat page with App Check on, in headless Chromium: built with a site key, under the
emulators it uses the debug provider, sends ``X-Firebase-AppCheck``, and a chat function that
enforces App Check (real verification against the local JWKS) answers it.

App Check's token exchange (``content-firebaseappcheck.googleapis.com``, the only part of
Firebase with no emulator) is answered by the browser's request routing with tokens signed by
``app_check_keys``; reCAPTCHA's script is blocked (the debug provider does not use it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from standins.app_check_keys import APP_ID, FakeAppCheck
from standins.http_server import Request, StandInServer
from standins.processes import ROOT, AuthEmulator, FunctionServer
from tests.conftest import PROJECT_ID
from tests.support.chromium import chromium
from tests.test_browser import WAIT_MS

pytestmark = pytest.mark.slow

SITE_KEY = "6LeTestSiteKey_for-app-check"
DEBUG_TOKEN = "00000000-test-debug-token-0000"
LIMITED_MODEL = "local/demo"  # the default model, consumed: a limited-use token per call


def _bundle(out: Path) -> Path:
    """web/ built as scripts/setup builds it (scripts/build-page), with a site key built in."""
    target = out / "js"
    subprocess.run(
        [str(ROOT / "scripts" / "build-page"), str(target)],
        cwd=ROOT,
        env={**os.environ, "APP_CHECK_SITE_KEY": SITE_KEY},
        check=True,
        timeout=120,
    )
    return target


def _static(content_type: str, body: bytes) -> Callable[[Request], None]:
    def send(request: Request) -> None:
        request.handler.send_response(200)
        request.handler.send_header("Content-Type", content_type)
        request.handler.send_header("Content-Length", str(len(body)))
        request.handler.end_headers()
        request.handler.wfile.write(body)

    return send


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory, auth_emulator: AuthEmulator) -> Iterator[StandInServer]:
    """The page as Hosting serves it locally: public/ with the bundle, and /__/firebase/init.*."""
    scripts = _bundle(tmp_path_factory.mktemp("app-check-page"))
    config = {"apiKey": "fake-api-key", "projectId": PROJECT_ID, "authDomain": "localhost", "appId": APP_ID}
    host, port = auth_emulator.host.split(":")
    emulators = {"auth": {"host": host, "port": int(port), "hostAndPort": auth_emulator.host}}
    server = StandInServer(
        [
            ("GET", r"/", _static("text/html", (ROOT / "public" / "index.html").read_bytes())),
            ("GET", r"/style\.css", _static("text/css", (ROOT / "public" / "style.css").read_bytes())),
            *[
                ("GET", rf"/js/{re.escape(js.name)}", _static("text/javascript", js.read_bytes()))
                for js in scripts.iterdir()
            ],
            ("GET", r"/__/firebase/init\.json", _static("application/json", json.dumps(config).encode())),
            (
                "GET",
                r"/__/firebase/init\.js",
                _static("text/javascript", f"var firebaseEmulators = {json.dumps(emulators)};".encode()),
            ),
        ]
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def enforcing_chat(
    function_server: Callable[..., FunctionServer], page_server: StandInServer, app_check_keys: FakeAppCheck
) -> FunctionServer:
    return function_server(
        CHAT_MODELS=f"{LIMITED_MODEL},openai/gpt-4o-mini",
        CHAT_APP_CHECK="enforce",
        CHAT_APP_CHECK_CONSUME_MODELS=LIMITED_MODEL,
        CORS_ORIGINS=page_server.url,
        TEST_APP_CHECK_JWKS_URL=app_check_keys.jwks_url,
        TEST_APP_CHECK_VERIFY_URL=app_check_keys.verify_url_format,
        PYTHONPATH=str(ROOT / "tests" / "support" / "cert_override"),
    )


def test_page_sends_app_check_tokens_that_an_enforcing_function_accepts(
    page_server: StandInServer, enforcing_chat: FunctionServer, app_check_keys: FakeAppCheck
) -> None:
    exchanges: list[dict[str, Any]] = []
    sent: list[tuple[str, str | None]] = []

    def exchange(route: Route) -> None:
        exchanges.append({"url": route.request.url, **json.loads(route.request.post_data or "{}")})
        body = {"token": app_check_keys.mint(PROJECT_ID), "ttl": "3600s"}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    with chromium() as browser:
        context = browser.new_context()
        context.route(re.compile(r"https://content-firebaseappcheck\.googleapis\.com/.*"), exchange)
        context.route(re.compile(r"https://www\.google\.com/.*"), lambda route: route.abort())
        context.add_init_script(
            f"localStorage.setItem('chat.functionUrl', {enforcing_chat.url!r});"
            f"localStorage.setItem('chat.appCheckDebugToken', {DEBUG_TOKEN!r});"
        )
        page = context.new_page()
        page.on(
            "request",
            lambda r: (
                sent.append((r.url, r.headers.get("x-firebase-appcheck")))
                if r.url.startswith(enforcing_chat.url)
                else None
            ),
        )
        page.goto(page_server.url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.get_by_label("Email").fill("app-check-page@example.com")
        page.get_by_label("Password").fill("correct horse 1")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_label("Model")).to_have_value(LIMITED_MODEL, timeout=WAIT_MS)
        for question in ("first question", "second question"):
            page.get_by_label("Your message").fill(question)
            page.get_by_role("button", name="Send").click()
            answer = page.locator(".message.assistant").last
            expect(answer).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    calls = [(url, token) for url, token in sent if "/v1/" in url and token is not None]
    chat_tokens = [token for url, token in calls if url.endswith("/v1/chat/completions")]
    assert len(chat_tokens) == 2 and len(set(chat_tokens)) == 2  # a fresh limited-use token per call
    assert all(token in app_check_keys.consumed for token in chat_tokens)
    assert all(e["debug_token"] == DEBUG_TOKEN and f"/apps/{APP_ID}:exchangeDebugToken" in e["url"] for e in exchanges)
    assert sum(1 for e in exchanges if e.get("limited_use")) == 2
    assert not [line for line in enforcing_chat.log_lines() if line["message"].startswith("app_check")]
