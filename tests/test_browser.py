"""The chat page, end to end in headless Chromium: served by the Firebase emulators as ``scripts/run``
serves it (Hosting, Functions, Auth), billing to the Lago stand-in of this test process.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``scripts/test`` installs it); no
browser is downloaded. The stop test calls the chat function directly, cross-origin (CORS), from
the page served by Hosting: the emulators do not pass a client's disconnect on to the function (it
would finish the answer and bill it whole), whereas functions-framework, as on Cloud Functions,
sees the client go and bills what was sent as partial.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect, sync_playwright

from tests.standins.lago import API_KEY as LAGO_KEY
from tests.standins.lago import FakeLago
from tests.support.emulator_suite import EmulatorSuite, local_settings
from tests.support.processes import ROOT, FunctionServer

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
BUDGET_CENTS = 100
MODELS = "local/demo,local/second"
WAIT_MS = 30_000  # for one answer through the emulators on a busy 2-core machine
LONG_QUESTION = " ".join(f"word{i}" for i in range(40))  # about 50 streamed pieces


def settings(fake_lago: FakeLago) -> dict[str, str]:
    return local_settings(fake_lago.url, LAGO_KEY, CHAT_MODELS=MODELS, CHAT_BUDGET_CENTS=str(BUDGET_CENTS))


@pytest.fixture(scope="module")
def suite(fake_lago: FakeLago) -> Iterator[EmulatorSuite]:
    suite = EmulatorSuite(settings(fake_lago)).start()
    yield suite
    suite.stop()


@pytest.fixture(scope="module")
def direct_chat(suite: EmulatorSuite, fake_lago: FakeLago) -> Iterator[FunctionServer]:
    """The chat function under functions-framework, called cross-origin by the page Hosting serves."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {
        **{key: os.environ[key] for key in keep if key in os.environ},
        **settings(fake_lago),
        "GOOGLE_CLOUD_PROJECT": suite.project_id,
        "FIREBASE_AUTH_EMULATOR_HOST": suite.auth_host,
        "CORS_ORIGINS": suite.hosting_url,
    }
    server = FunctionServer(env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class ChatPage:
    """One signed-up user's page, with what its console said and which ID tokens it sent."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.context, self.url = context, url
        self.page: Page = context.new_page()
        self.console: list[str] = []
        self.sent_tokens: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("request", self._saw)
        self.email = f"web-{uuid.uuid4().hex[:10]}@example.com"

    def _saw(self, request: Request) -> None:
        self.requests.append(f"{request.method} {request.url}")
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            self.sent_tokens.append(authorization.removeprefix("Bearer "))

    def open(self) -> ChatPage:
        self.page.goto(self.url)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        return self

    def sign_up(self, model: str = MODELS.split(",")[0]) -> ChatPage:
        """Create an account; wait until the picker shows ``model`` ("" when models cannot load)."""
        self.page.get_by_label("Email").fill(self.email)
        self.page.get_by_label("Password").fill("correct horse 1")
        self.page.get_by_role("button", name="Create account").click()
        expect(self.page.locator("#chat")).to_be_visible(timeout=WAIT_MS)
        expect(self.page.get_by_label("Model")).to_have_value(model, timeout=WAIT_MS)
        return self

    def ask(self, question: str) -> None:
        self.page.get_by_label("Your message").fill(question)
        self.page.get_by_role("button", name="Send").click()

    @property
    def answer(self) -> Locator:
        return self.page.locator(".message.assistant").last

    def wait_answered(self, state: str = "done") -> str:
        expect(self.answer).to_have_attribute("data-state", state, timeout=WAIT_MS)
        return self.answer.locator(".text").inner_text()

    def usage_row(self, model: str = "local/demo") -> Locator:
        return self.page.locator(f'#usage tr[data-model="{model}"]')

    def record_answer_states(self) -> None:
        """Keep every text the newest answer shows, in order, as the page changes it."""
        self.page.evaluate(
            """() => {
              window.answerStates = [];
              new MutationObserver(() => {
                const texts = document.querySelectorAll('.message.assistant .text');
                const text = texts.length ? texts[texts.length - 1].textContent : '';
                const states = window.answerStates;
                if (text && states[states.length - 1] !== text) states.push(text);
              }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
            }"""
        )

    def answer_states(self) -> list[str]:
        return self.page.evaluate("() => window.answerStates")

    def leaked_tokens(self) -> int:
        """Console lines holding an ID token the page sent, or anything shaped like a JWT."""
        return sum(1 for line in self.console if "eyJ" in line or any(t in line for t in self.sent_tokens))


@pytest.fixture
def open_page(browser: Browser, suite: EmulatorSuite) -> Iterator[Any]:
    """``open_page(url=..., function_url=..., viewport=...)``: a fresh browser profile per page."""
    pages: list[ChatPage] = []

    def make(
        url: str | None = None, function_url: str | None = None, viewport: dict[str, int] | None = None
    ) -> ChatPage:
        context = browser.new_context(viewport=viewport or {"width": 1100, "height": 720})
        if function_url:
            context.add_init_script(f"localStorage.setItem('chat.functionUrl', {function_url!r})")
        page = ChatPage(context, url or suite.hosting_url)
        pages.append(page)
        return page.open()

    yield make
    for page in pages:
        leaked = page.leaked_tokens()
        page.context.close()
        assert leaked == 0, f"{leaked} console line(s) of the page held an ID token"


def uid_of(fake_lago: FakeLago, email: str) -> str:
    """The uid the chat function provisioned in Lago (the customer's external id) for this email."""
    return next(c["external_id"] for c in fake_lago.customers.values() if c.get("email") == email)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()  # compare tokens without printing them


# --- sign-up, streaming through the Hosting rewrite, usage ----------------------------------


def test_sign_up_then_answer_streams_in_pieces_and_usage_updates(open_page, fake_lago: FakeLago) -> None:
    chat = open_page().sign_up()
    page = chat.page
    expect(page.locator("#who")).to_have_text(chat.email)
    assert page.get_by_label("Model").locator("option").all_inner_texts() == MODELS.split(",")
    expect(page.locator("#usage-body")).to_contain_text("No tokens used yet")

    chat.record_answer_states()
    chat.ask("Hello from the browser")
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    full = "This is the local demo model. You said: Hello from the browser"
    assert chat.wait_answered() == full
    states = chat.answer_states()
    assert len(states) >= 4, states  # the answer grew piece by piece, not all at once
    assert states[-1] == full
    assert all(later.startswith(earlier) for earlier, later in zip(states, states[1:], strict=False))
    assert any("/api/v1/chat/completions" in r and r.startswith("POST") for r in chat.requests)

    row = chat.usage_row()
    expect(row.locator(".requests")).to_have_text("1", timeout=WAIT_MS)
    first_tokens = int(row.locator(".tokens").inner_text().replace(",", ""))
    assert first_tokens > 0
    expect(page.locator("#usage-budget")).to_contain_text("left")

    chat.ask("And a second question")
    chat.wait_answered()
    expect(row.locator(".requests")).to_have_text("2", timeout=WAIT_MS)  # refreshed after each answer
    assert int(row.locator(".tokens").inner_text().replace(",", "")) > first_tokens
    events = fake_lago.events(uid_of(fake_lago, chat.email))
    assert len(events) == 2 and all("partial" not in e["properties"] for e in events)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))


def test_model_picker_choice_is_the_model_answering(open_page, fake_lago: FakeLago) -> None:
    chat = open_page().sign_up()
    chat.page.get_by_label("Model").select_option("local/second")
    chat.ask("Which model?")
    chat.wait_answered()
    expect(chat.usage_row("local/second").locator(".requests")).to_have_text("1", timeout=WAIT_MS)
    [event] = fake_lago.events(uid_of(fake_lago, chat.email))
    assert event["properties"]["model"] == "local/second"


# --- stop, budget, errors -------------------------------------------------------------------


def test_stop_midway_keeps_the_partial_answer_and_bills_one_partial_event(
    open_page, direct_chat: FunctionServer, fake_lago: FakeLago
) -> None:
    chat = open_page(function_url=direct_chat.url)  # cross-origin: CORS with the ID token
    chat.sign_up()
    chat.ask(LONG_QUESTION)
    expect(chat.answer.locator(".text")).to_contain_text("You said: word0", timeout=WAIT_MS)
    chat.page.get_by_role("button", name="Stop").click()
    shown = chat.wait_answered("stopped")
    full = f"This is the local demo model. You said: {LONG_QUESTION}"
    assert full.startswith(shown) and len(shown) < len(full)
    expect(chat.page.locator("#status")).to_have_text("Stopped. The part shown was billed.")

    uid = uid_of(fake_lago, chat.email)
    events = fake_lago.wait_for_events(uid, 1)
    assert len(events) == 1
    properties = events[0]["properties"]
    assert properties["partial"] == "true"
    assert 0 < properties["completion_tokens"] < 60

    chat.ask("still here?")  # the page goes on after a stop, the stopped part in the history
    assert chat.wait_answered() == "This is the local demo model. You said: still here?"


def test_budget_reached_shows_a_clear_message(open_page, fake_lago: FakeLago) -> None:
    chat = open_page().sign_up()
    chat.ask("Before the limit")
    chat.wait_answered()
    fake_lago.add_usage(uid_of(fake_lago, chat.email), BUDGET_CENTS + 50)
    # Served from the usage the instance has (Lago reads never make a chat wait); the new usage
    # is read meanwhile, and the ledger takes it on the next call.
    chat.ask("Before the instance knows")
    chat.wait_answered()

    chat.ask("After the limit")
    error = chat.page.locator("#chat-error")
    expect(error).to_contain_text("reached your usage limit for this billing period", timeout=WAIT_MS)
    expect(error).to_have_attribute("data-code", "budget_exceeded")
    expect(error).to_have_attribute("role", "alert")
    expect(chat.page.locator("#status")).to_have_text("The answer failed.")
    # Not a broken page: the earlier answer stays, the question is kept to send later, usage says why.
    expect(chat.page.locator(".message.assistant")).to_have_count(2)
    expect(chat.page.get_by_label("Your message")).to_have_value("After the limit")
    expect(chat.page.get_by_role("button", name="Send")).to_be_enabled()
    expect(chat.page.locator("#usage-budget")).to_contain_text("$0.00 left", timeout=WAIT_MS)
    expect(chat.page.locator("#usage-amount")).to_contain_text("$1.50 used")


def test_api_error_is_shown_in_words(open_page) -> None:
    chat = open_page().sign_up()
    chat.page.evaluate(
        "() => document.getElementById('model').add(new Option('openai/not-allowed', 'openai/not-allowed', true, true))"
    )
    chat.ask("hello")
    expect(chat.page.locator("#chat-error")).to_have_text(
        "The model 'openai/not-allowed' does not exist or you do not have access to it.", timeout=WAIT_MS
    )
    expect(chat.page.locator(".message.assistant")).to_have_count(0)


def test_page_from_an_origin_cors_does_not_allow_cannot_call_the_function(
    open_page, suite: EmulatorSuite, direct_chat: FunctionServer
) -> None:
    other_origin = suite.hosting_url.replace("127.0.0.1", "localhost")  # not in CORS_ORIGINS
    chat = open_page(url=other_origin, function_url=direct_chat.url).sign_up(model="")
    chat.ask("hello")
    expect(chat.page.locator("#chat-error")).to_have_text(
        "Could not reach the chat service. Check your connection and try again.", timeout=WAIT_MS
    )


# --- tokens ------------------------------------------------------------------------------------


def test_expired_id_token_is_refreshed_by_the_sdk_before_the_call(open_page) -> None:
    chat = open_page().sign_up()
    chat.ask("with the first token")
    chat.wait_answered()
    first = chat.sent_tokens[-1]

    # An hour and more later, by the page's clock: the SDK must fetch a new token first.
    chat.page.clock.set_system_time(datetime.now() + timedelta(hours=2))
    with chat.page.expect_request(re.compile(r"/securetoken\.googleapis\.com/v1/token")):
        chat.ask("with a refreshed token")
    assert chat.wait_answered() == "This is the local demo model. You said: with a refreshed token"
    assert digest(chat.sent_tokens[-1]) != digest(first)


def test_console_never_shows_an_id_token(open_page) -> None:
    chat = open_page().sign_up()
    chat.ask("anything")
    chat.wait_answered()
    chat.page.get_by_role("button", name="Sign out").click()
    expect(chat.page.get_by_role("button", name="Create account")).to_be_visible()
    assert chat.sent_tokens, "the page sent no token at all"
    assert chat.leaked_tokens() == 0


# --- layout ------------------------------------------------------------------------------------


def test_page_fits_a_phone_width_screen(open_page) -> None:
    chat = open_page(viewport={"width": 375, "height": 740}).sign_up()
    chat.ask("Hello from a phone")
    chat.wait_answered()
    expect(chat.usage_row().locator(".requests")).to_have_text("1", timeout=WAIT_MS)
    overflow = chat.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    chat_box = chat.page.locator("#chat").bounding_box()
    usage_box = chat.page.locator("#usage").bounding_box()
    assert usage_box["y"] >= chat_box["y"] + chat_box["height"]  # stacked, not squeezed side by side
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "chat-phone.png"), full_page=True)
