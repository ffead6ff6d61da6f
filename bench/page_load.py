"""The chat page on a slow phone: how long until the sign-in form shows, and until the chat does.

Chromium (Debian's, headless, by Playwright) with Lighthouse's mobile profile set over CDP: 1.6
Mbps down, 750 kbps up, 150 ms round trip (``Network.emulateNetworkConditions``) and the CPU
slowed 4x (``Emulation.setCPUThrottlingRate``). Each run is a new browser profile (a cold cache).
The page is ``public/`` as ``scripts/setup`` built it, served gzip-compressed from 127.0.0.1 as
Hosting would serve it, with ``/__/firebase/init.*`` naming an Auth emulator started for the run
(so signing up works; the chat and usage functions and Firestore are not running: their calls
fail quietly and are not waited for). Printed, the median and range over ``--runs``:

- ``form``: navigation start to the sign-in form shown;
- ``script``: the script bytes (as sent, gzip) the browser had received by then;
- ``chat, signed up at once``: "Create account" pressed the moment the form shows, to the chat
  shown (its chunk may still be loading);
- ``chat, signed up later``: pressed once the page has loaded what it fetches while the user
  types (the chat's chunk), to the chat shown.

Run from the repository root after ``scripts/setup``: ``.venv/bin/python -m bench.page_load``
(``--public DIR`` measures another build of the page, e.g. an older one).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import statistics
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from standins.chromium import CHROMIUM, CHROMIUM_ARGS
from standins.processes import ROOT, AuthEmulator

PROFILE = {"latency_ms": 150, "down_bps": 1_600_000, "up_bps": 750_000, "cpu_slowdown": 4}
DEMO_CONFIG = {"apiKey": "fake-api-key", "projectId": "demo-bench", "authDomain": "localhost"}
WATCH = """
  window.shown = {};
  new MutationObserver(() => {
    for (const id of ['sign-in', 'chat']) {
      const element = document.getElementById(id);
      if (element && !element.hidden && !(id in window.shown)) window.shown[id] = performance.now();
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['hidden']});
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """public/ with gzip, and /__/firebase/init.json and init.js as the Hosting emulator has them."""

    init_files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in self.init_files:
            return self._send(
                self.init_files[path], "application/javascript" if path.endswith(".js") else "application/json"
            )
        file = Path(self.translate_path(path))
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            self.send_error(404)
            return None
        return self._send(file.read_bytes(), self.guess_type(str(file)))

    def _send(self, body: bytes, content_type: str) -> None:
        compress = "gzip" in self.headers.get("Accept-Encoding", "")
        payload = gzip.compress(body, 6) if compress else body
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        if compress:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(public: Path, auth_host: str) -> Iterator[str]:
    emulators = {"auth": {"host": "127.0.0.1", "port": int(auth_host.split(":")[1]), "hostAndPort": auth_host}}
    handler = type(
        "Handler",
        (_Handler,),
        {
            "init_files": {
                "/__/firebase/init.json": json.dumps(DEMO_CONFIG).encode(),
                "/__/firebase/init.js": f"var firebaseEmulators = {json.dumps(emulators)};".encode(),
            }
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(public)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def throttled_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.add_init_script(WATCH)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": PROFILE["latency_ms"],
            "downloadThroughput": PROFILE["down_bps"] / 8,
            "uploadThroughput": PROFILE["up_bps"] / 8,
        },
    )
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": PROFILE["cpu_slowdown"]})
    return page


def one_run(browser: Browser, url: str, wait_for_prefetch: bool) -> dict[str, float]:
    page = throttled_page(browser)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => 'sign-in' in window.shown", timeout=120_000)
        form_ms = page.evaluate("() => window.shown['sign-in']")
        script_bytes = page.evaluate(
            """at => performance.getEntriesByType('resource')
                 .filter(r => r.initiatorType === 'script' || r.name.endsWith('.js'))
                 .filter(r => r.responseEnd <= at && !r.name.includes('/__/'))
                 .reduce((sum, r) => sum + r.encodedBodySize, 0)""",
            form_ms,
        )
        if wait_for_prefetch:
            page.wait_for_load_state("networkidle", timeout=120_000)
        page.fill("#email", f"bench-{uuid.uuid4().hex[:10]}@example.com")
        page.fill("#password", "correct horse 1")
        pressed = page.evaluate("() => performance.now()")
        page.click("button[value=sign-up]")
        page.wait_for_function("() => 'chat' in window.shown", timeout=120_000)
        chat_ms = page.evaluate("() => window.shown.chat") - pressed
        return {"form": form_ms, "script": script_bytes, "chat": chat_ms}
    finally:
        page.context.close()


def describe(values: list[float], unit: str) -> str:
    if unit == "KB":
        return f"{statistics.median(values) / 1000:.1f} KB"
    return f"{statistics.median(values):,.0f} ms ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--public", type=Path, default=ROOT / "public", help="the page to serve (default: public/)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind (default: 5)")
    args = parser.parse_args()
    auth = AuthEmulator("demo-bench").start()
    try:
        with serve(args.public, auth.host) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            at_once = [one_run(browser, url + "/", wait_for_prefetch=False) for _ in range(args.runs)]
            later = [one_run(browser, url + "/", wait_for_prefetch=True) for _ in range(args.runs)]
            browser.close()
    finally:
        auth.stop()
    runs = at_once + later
    profile = f"{PROFILE['down_bps'] / 1e6:g} Mbps down, {PROFILE['latency_ms']} ms RTT, {PROFILE['cpu_slowdown']}x CPU"
    print(f"The chat page ({args.public}), {profile}, median (range) of {len(runs)} / {args.runs} runs:")
    print(f"  form                      {describe([r['form'] for r in runs], 'ms')}")
    print(f"  script before the form    {describe([r['script'] for r in runs], 'KB')} (gzip, as sent)")
    print(f"  chat, signed up at once   {describe([r['chat'] for r in at_once], 'ms')}")
    print(f"  chat, signed up later     {describe([r['chat'] for r in later], 'ms')}")


if __name__ == "__main__":
    main()
