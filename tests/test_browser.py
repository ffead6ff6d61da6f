"""The chat page, end to end in headless Chromium: served by the Firebase emulators as ``scripts/run``
serves it (Hosting, Functions, Auth), billing to the Lago stand-in of this test process.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``scripts/test`` installs it); no
browser is downloaded. The stop test calls the chat function directly, cross-origin (CORS), from
the page served by Hosting: the emulators do not pass a client's disconnect on to the function (it
would finish the answer and bill it whole), whereas functions-framework, as on Cloud Functions,
sees the client go and bills what was sent as partial.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, Route, expect

from standins.lago import API_KEY as LAGO_KEY
from standins.lago import FakeLago
from standins.openai_llm import TOOL_CALL, FakeOpenAI
from standins.processes import ROOT, FirestoreEmulator, FunctionServer
from tests.conftest import OPENAI_KEY
from tests.support.axe import axe_violations
from tests.support.chromium import chromium
from tests.support.emulator_suite import EmulatorSuite, local_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
BUDGET_CENTS = 100
MODELS = "local/demo,local/second"
STAND_IN_MODEL = "openai/gpt-4o-mini"  # answered by the OpenAI-wire stand-in (direct_chat only)
WAIT_MS = 30_000  # for one answer through the emulators on a busy 2-core machine
LONG_QUESTION = " ".join(f"word{i}" for i in range(40))  # about 50 streamed pieces
DESKTOP = {"width": 1100, "height": 720}
PHONE = {"width": 390, "height": 844}


def settings(fake_lago: FakeLago) -> dict[str, str]:
    return local_settings(fake_lago.url, LAGO_KEY, CHAT_MODELS=MODELS, CHAT_BUDGET_CENTS=str(BUDGET_CENTS))


@pytest.fixture(scope="module")
def suite(fake_lago: FakeLago, firestore_emulator: FirestoreEmulator) -> Iterator[EmulatorSuite]:
    suite = EmulatorSuite(settings(fake_lago)).start()
    firestore_emulator.load_rules(suite.project_id, ROOT / "firestore.rules")  # the page writes under them
    yield suite
    suite.stop()


@pytest.fixture(scope="module")
def direct_chat(suite: EmulatorSuite, fake_lago: FakeLago, fake_llm: FakeOpenAI) -> Iterator[FunctionServer]:
    """The chat function under functions-framework, called cross-origin by the page Hosting serves.

    Its last model is the tests' OpenAI-wire stand-in, for answers the local model does not give.
    """
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {
        **{key: os.environ[key] for key in keep if key in os.environ},
        **settings(fake_lago),
        "CHAT_MODELS": f"{MODELS},{STAND_IN_MODEL}",
        "OPENAI_API_BASE": fake_llm.base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "GOOGLE_CLOUD_PROJECT": suite.project_id,
        "FIREBASE_AUTH_EMULATOR_HOST": suite.auth_host,
        "CORS_ORIGINS": suite.hosting_url,
    }
    server = FunctionServer(env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


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
def open_page(browser: Browser, suite: EmulatorSuite, firestore_emulator: FirestoreEmulator) -> Iterator[Any]:
    """``open_page(url=..., function_url=..., viewport=...)``: a fresh browser profile per page."""
    pages: list[ChatPage] = []

    def make(
        url: str | None = None, function_url: str | None = None, viewport: dict[str, int] | None = None
    ) -> ChatPage:
        context = browser.new_context(viewport=viewport or {"width": 1100, "height": 720})
        # The tests' Firestore emulator (gcloud's, on a free port; scripts/run uses the default one).
        context.add_init_script(f"localStorage.setItem('chat.firestoreEmulator', {firestore_emulator.host!r})")
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
    # A fresh account: its currency and billing period, from the subscription reading usage made.
    period = r"\(\w{3} \d{1,2}, \d{4} – \w{3} \d{1,2}, \d{4}\)"
    expect(page.locator("#usage-amount")).to_have_text(re.compile(rf"^\$0\.00 used this period {period}\.$"))

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
    # Lago counts whole cents; the answer cost a fraction of one: not "$0.00".
    expect(page.locator("#usage-amount")).to_have_text(re.compile(rf"^Less than \$0\.01 used this period {period}\.$"))
    expect(page.locator("#usage .note")).to_have_text(
        "Usage is counted in whole cents; each answer shows its exact cost."
    )
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


# --- answers as Markdown, conversations -------------------------------------------------------

CODE = "def by_length(words):\n    return sorted(words, key=len)"
MARKDOWN = f"""# Sorting

Use **sorted()**, see [the docs](https://docs.python.org/3/howto/sorting.html).

```python
{CODE}
```

![diagram](http://127.0.0.1:9/diagram.png)
"""
# Model output that tries to run or load something; port 9 (discard) is never a real server.
HOSTILE = """<script>window.pwned = 'script'</script>
<img src="http://127.0.0.1:9/img.png" onerror="window.pwned = 'img'">
[click me](javascript:window.pwned='link') and <a href="javascript:window.pwned='a'">raw link</a>
<iframe src="http://127.0.0.1:9/frame"></iframe><svg onload="window.pwned = 'svg'"></svg>
<style>body { background: url(http://127.0.0.1:9/css.png) }</style>

<div onmouseover="window.pwned = 'div'">html in markdown</div>
"""
UNSAFE = "script, img, iframe, svg, style, object, embed, [onerror], [onload], [onmouseover], [style]"


def test_answer_is_rendered_as_safe_markdown_with_copyable_code_and_its_cost(
    open_page, suite: EmulatorSuite, fake_lago: FakeLago
) -> None:
    chat = open_page().sign_up()
    page = chat.page
    chat.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=suite.hosting_url)
    question = f"/echo {MARKDOWN}{HOSTILE}"  # the local model answers the rest verbatim
    chat.ask(question)
    chat.wait_answered()
    answer = chat.answer

    # The user's own message is plain text, exactly as typed.
    mine = page.locator(".message.user .text").last
    assert mine.text_content() == question.strip()  # as sent: the composer trims
    expect(mine.locator("*")).to_have_count(0)

    # Markdown rendered: heading, emphasis, a link that opens a new tab, a highlighted code block.
    expect(answer.locator("h1")).to_have_text("Sorting")
    expect(answer.locator("strong")).to_have_text("sorted()")
    docs = answer.get_by_role("link", name="the docs")
    expect(docs).to_have_attribute("href", "https://docs.python.org/3/howto/sorting.html")
    expect(docs).to_have_attribute("target", "_blank")
    expect(docs).to_have_attribute("rel", "noopener noreferrer")
    expect(answer.locator("pre code.language-python")).to_have_text(CODE)
    expect(answer.locator("pre code .hljs-keyword").first).to_have_text("def")
    copy = answer.get_by_role("button", name="Copy code (python)")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == CODE

    # An image is a link, not a request.
    expect(answer.get_by_role("link", name="Image: diagram")).to_have_attribute(
        "href", "http://127.0.0.1:9/diagram.png"
    )

    # Nothing hostile survives, runs or loads, even when clicked or hovered.
    expect(answer.locator(UNSAFE)).to_have_count(0)
    expect(answer.locator('[href^="javascript:" i]')).to_have_count(0)
    expect(answer).to_contain_text("html in markdown")
    answer.get_by_text("click me").click()
    answer.get_by_text("raw link").click()
    answer.get_by_text("html in markdown").hover()
    assert page.evaluate("() => window.pwned") is None
    assert not [r for r in chat.requests if "127.0.0.1:9/" in r]
    assert len(chat.context.pages) == 1

    # The answer's tokens and cost, from the stream's usage chunk, as billed.
    [event] = fake_lago.events(uid_of(fake_lago, chat.email))
    tokens = event["properties"]["total_tokens"]
    expect(answer.locator(".cost")).to_have_text(re.compile(rf"^{tokens:,} tokens · \$0\.0\d+$"))
    # The usage panel's period is the real one: this calendar month.
    today = datetime.now(UTC)
    last_day = calendar.monthrange(today.year, today.month)[1]
    expect(page.locator("#usage-amount")).to_contain_text(f"{today:%b} {last_day}, {today.year}")

    # A long answer re-rendered as it grows keeps the reader's place: followed while at the
    # bottom, left alone once the reader scrolls up.
    chat.ask("/echo " + "\n".join(f"- line {i}" for i in range(30)))
    expect(answer.locator("li").nth(11)).to_be_attached(timeout=WAIT_MS)  # 12 lines so far
    answer_end_in_view = "e => e.getBoundingClientRect().bottom <= innerHeight + 1"
    assert page.evaluate("() => scrollY") > 0 and answer.evaluate(answer_end_in_view)
    page.evaluate("() => scrollTo(0, 0)")
    expect(answer.locator("li").nth(23)).to_be_attached(timeout=WAIT_MS)
    assert page.evaluate("() => scrollY") == 0
    chat.wait_answered()
    expect(answer.locator("li")).to_have_count(30)


CODE_QUESTION = f"/echo To sort words by length:\n\n```python\n{CODE}\n```"
CODE_TITLE = "To sort words by length:"  # the /echo command is not part of the title


def test_conversations_are_kept_reopened_after_a_reload_renamed_and_deleted(
    open_page, suite: EmulatorSuite, firestore_emulator: FirestoreEmulator, fake_lago: FakeLago
) -> None:
    chat = open_page().sign_up()
    page = chat.page
    listed = page.locator("#conversation-list li")
    titles = listed.locator(".open")
    chat.ask(CODE_QUESTION)
    chat.wait_answered()
    chat.ask("And in reverse?")
    chat.wait_answered()
    expect(titles).to_have_text([CODE_TITLE])
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".message")).to_have_count(0)
    chat.ask("Another topic")
    chat.wait_answered()
    expect(titles).to_have_text(["Another topic", CODE_TITLE])  # newest first
    expect(page.locator("#conversation-list li[data-pending]")).to_have_count(0, timeout=WAIT_MS)  # saved

    page.reload()
    expect(titles).to_have_text(["Another topic", CODE_TITLE], timeout=WAIT_MS)
    expect(page.locator(".message")).to_have_count(0)  # a new chat until one is opened
    titles.get_by_text(CODE_TITLE).click()
    expect(page.locator(".message")).to_have_count(4)
    first_answer = page.locator(".message.assistant").first
    expect(first_answer.locator("pre code.language-python")).to_have_text(CODE)
    expect(first_answer.locator(".cost")).to_contain_text("tokens")
    expect(listed.first.locator(".open")).to_have_text("Another topic")
    expect(listed.nth(1)).to_have_attribute("aria-current", "true")
    with page.expect_request(lambda r: r.method == "POST" and "/chat/completions" in r.url) as sent:
        chat.ask("One more")  # the reopened conversation goes on, its history sent along
    assert [m["content"] for m in sent.value.post_data_json["messages"]][::2] == [
        CODE_QUESTION,
        "And in reverse?",
        "One more",
    ]
    chat.wait_answered()

    page.get_by_role("button", name=f"Rename “{CODE_TITLE}”").click()
    page.get_by_label("New title").fill("Sorting in Python")
    page.get_by_label("New title").press("Enter")
    expect(titles).to_have_text(["Sorting in Python", "Another topic"])
    expect(page.locator("#conversation-list li[data-pending]")).to_have_count(0, timeout=WAIT_MS)
    expect(chat.usage_row().locator(".requests")).to_have_text("4", timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "conversation.png"))  # docs/screenshot.png, shown by the README
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete “Another topic”").click()
    expect(titles).to_have_text(["Sorting in Python"])
    expect(page.locator("#conversation-list li[data-pending]")).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator(".message")).to_have_count(6)  # the open conversation was not the deleted one

    # What Firestore keeps, read as an admin: the renamed conversation and its six messages.
    uid = uid_of(fake_lago, chat.email)
    # A write the page made reaches the emulator a moment after the page shows it.
    stored = eventually(
        lambda: firestore_emulator.documents(suite.project_id, f"users/{uid}/conversations"),
        lambda docs: len(docs) == 1,
        what="one conversation stored in Firestore",
    )
    fields = stored[0]["fields"]
    assert fields["title"]["stringValue"] == "Sorting in Python"
    assert fields["model"]["stringValue"] == "local/demo"
    messages = fields["messages"]["arrayValue"]["values"]
    assert [m["mapValue"]["fields"]["role"]["stringValue"] for m in messages] == ["user", "assistant"] * 3


def test_tool_call_in_an_answer_shows_as_a_labelled_block(open_page, direct_chat: FunctionServer) -> None:
    chat = open_page(function_url=direct_chat.url).sign_up()
    chat.page.get_by_label("Model").select_option(STAND_IN_MODEL)
    chat.ask("What is the weather in Paris? #toolcall")  # the stand-in streams a get_weather call
    chat.wait_answered()
    block = chat.answer.locator(".tool-call")
    expect(block).to_have_count(1)
    expect(block.locator(".label")).to_have_text("Tool call")
    expect(block.locator(".name")).to_have_text(TOOL_CALL["name"])
    arguments = block.locator(".arguments").inner_text()
    assert json.loads(arguments) == json.loads(TOOL_CALL["arguments"])
    assert "\n" in arguments  # pretty-printed, not the raw JSON text
    expect(chat.answer.locator(".cost")).to_contain_text("tokens")


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


def in_view(page: Page, locator: Locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and size is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_layout_holds_at_desktop_and_phone_width(open_page, width: str) -> None:
    chat = open_page(viewport=DESKTOP if width == "desktop" else PHONE).sign_up()
    page = chat.page
    ARTIFACTS.mkdir(exist_ok=True)

    def screenshot(state: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"layout-{width}-{state}.png"))

    # An empty chat says what to do; the first message replaces the hint.
    expect(page.locator("#chat-hint")).to_be_visible()
    expect(page.locator("#chat-hint")).to_contain_text("Enter sends it")
    screenshot("empty-chat")

    # After a long answer the message box and Send are still in view, below the answer's end.
    chat.ask("/echo " + "\n\n".join(f"Paragraph-{i}." for i in range(40)))
    chat.wait_answered()
    expect(page.locator("#chat-hint")).to_be_hidden()
    assert in_view(page, page.get_by_label("Your message")) and in_view(page, page.get_by_role("button", name="Send"))
    assert (
        chat.answer.evaluate("e => e.getBoundingClientRect().bottom") <= page.locator("#composer").bounding_box()["y"]
    )
    screenshot("long-answer")
    chat.answer.evaluate("e => e.scrollIntoView({block: 'start'})")  # reading it from the top: still there
    assert in_view(page, page.get_by_label("Your message"))

    # A code block's Copy button sits above the code, never over it; the title has no "/echo".
    page.get_by_role("button", name="New chat").click()
    chat.ask(CODE_QUESTION)
    chat.wait_answered()
    copy = chat.answer.get_by_role("button", name="Copy code (python)").bounding_box()
    code = chat.answer.locator("pre code").bounding_box()
    assert copy and code and copy["y"] + copy["height"] <= code["y"]
    titles = page.locator("#conversation-list .open")
    expect(titles).to_have_text([CODE_TITLE, "Paragraph-0."])

    # The rename field takes the list's width, Save and Cancel under it.
    page.get_by_role("button", name="New chat").click()
    chat.ask("Third topic")
    chat.wait_answered()
    page.get_by_role("button", name=f"Rename “{CODE_TITLE}”").click()
    field = page.get_by_label("New title")
    list_box = page.locator("#conversation-list").bounding_box()
    assert list_box and field.bounding_box()["width"] >= 0.85 * list_box["width"]
    page.locator("#conversation-list").scroll_into_view_if_needed()
    screenshot("rename")
    page.keyboard.press("Escape")

    # Three conversations: on a phone the list is a short scrolling box, and a cue says there is
    # more below until it is scrolled to its end; on a desktop they all fit.
    conversation_list = page.locator("#conversation-list")
    cue = page.locator(".more-cue")
    if width == "phone":
        assert conversation_list.evaluate("e => e.scrollHeight > e.clientHeight")
        expect(cue).to_be_visible()
        conversation_list.evaluate("e => e.scrollTo(0, e.scrollHeight)")
        expect(cue).to_be_hidden()
        # Stacked, not squeezed side by side, and nothing wider than the screen.
        chat_box, usage_box = page.locator("#chat").bounding_box(), page.locator("#usage").bounding_box()
        assert chat_box and usage_box and usage_box["y"] >= chat_box["y"] + chat_box["height"]
    else:
        expect(cue).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.evaluate("() => scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"layout-{width}-page.png"), full_page=True)


def test_stop_under_the_emulators_says_the_answer_is_billed_whole(open_page, fake_lago: FakeLago) -> None:
    chat = open_page().sign_up()  # through Hosting's rewrite: the Functions emulator
    chat.ask(LONG_QUESTION)
    expect(chat.answer.locator(".text")).to_contain_text("You said: word0", timeout=WAIT_MS)
    chat.page.get_by_role("button", name="Stop").click()
    chat.wait_answered("stopped")
    expect(chat.page.locator("#status")).to_have_text(
        "Stopped. Under the emulators the answer still runs to its end and is billed whole."
    )
    [event] = fake_lago.wait_for_events(uid_of(fake_lago, chat.email), 1)
    assert "partial" not in event["properties"]  # what the page said: the whole answer


def test_each_question_has_its_own_idempotency_key_and_its_retry_the_same(open_page) -> None:
    chat = open_page().sign_up()
    keys: list[str | None] = []
    refused = False

    def first_refused(route: Route) -> None:
        nonlocal refused
        keys.append(route.request.headers.get("idempotency-key"))
        if refused:
            route.continue_()
        else:  # as if the ID token had been revoked: the page refreshes it and sends again
            refused = True
            route.fulfill(status=401, json={"error": {"message": "expired", "code": "invalid_api_key"}})

    chat.page.route("**/v1/chat/completions", first_refused)
    chat.ask("first question")
    chat.wait_answered()
    chat.ask("second question")
    chat.wait_answered()
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert all(uuid.UUID(key or "").version == 4 for key in keys)


# --- accessibility: axe-core's WCAG A/AA rules, the keyboard, what a screen reader hears -------

WIDTHS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
TABLE_AND_CODE = f"""/echo ## Sorting

| Word | Length |
| --- | ---: |
| pear | 4 |
| fig | 3 |

```python
{CODE}
```

Pass a `key` function; see [the docs](https://docs.python.org/3/howto/sorting.html).
"""


def ask_for_an_error(chat: ChatPage) -> None:
    """A question to a model the server does not allow: the API's error, shown in words."""
    chat.page.evaluate(
        "() => document.getElementById('model').add(new Option('openai/not-allowed', 'openai/not-allowed', true, true))"
    )
    chat.ask("hello")
    expect(chat.page.locator("#chat-error")).to_contain_text("does not exist", timeout=WAIT_MS)


@WIDTHS
def test_axe_finds_no_wcag_violation_in_any_state_of_the_page(open_page, viewport: dict[str, int]) -> None:
    chat = open_page(viewport=viewport)
    page = chat.page
    found: dict[str, list[str]] = {}
    expect(page.get_by_role("button", name="Create account")).to_be_visible()
    found["signed out"] = axe_violations(page)

    page.get_by_label("Email").fill(chat.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#sign-in-error")).not_to_be_empty(timeout=WAIT_MS)
    found["sign-in error"] = axe_violations(page)

    chat.sign_up()
    found["empty chat"] = axe_violations(page)

    chat.ask(TABLE_AND_CODE)
    chat.wait_answered()
    expect(chat.answer.locator("table")).to_be_visible()
    expect(chat.answer.locator("pre code .hljs-keyword").first).to_be_visible()  # highlight.js has loaded
    found["an answer with a table and code"] = axe_violations(page)

    for question in ("Second topic", "Third topic"):
        page.get_by_role("button", name="New chat").click()
        chat.ask(question)
        chat.wait_answered()
    expect(page.locator("#conversation-list li")).to_have_count(3)
    page.locator("#conversation-list button.rename").first.click()
    expect(page.get_by_label("New title")).to_be_focused()
    found["three conversations, a rename open"] = axe_violations(page)
    page.keyboard.press("Escape")

    ask_for_an_error(chat)
    found["an API error"] = axe_violations(page)

    failing = {state: lines for state, lines in found.items() if lines}
    assert not failing, "\n".join(f"{state}:\n  " + "\n  ".join(lines) for state, lines in failing.items())


def focused(page: Page) -> str:
    """The focused element as "tag#id.class" ("body" when focus was dropped)."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + [...e.classList].map(c => '.' + c).join(''); }"
    )


def test_keyboard_focus_always_lands_where_the_user_goes_on(open_page) -> None:
    chat = open_page()
    page = chat.page
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # the skip link, first on the page, leads to the form
    expect(page.locator("#skip")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Email")).to_be_focused()

    # A wrong password: the error is shown and focus goes back to the field to correct.
    page.keyboard.type(chat.email)
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#sign-in-error")).not_to_be_empty(timeout=WAIT_MS)
    assert focused(page) in ("input#email", "input#password")

    # Signed up: the message box.
    page.get_by_label("Password").fill("correct horse 1")
    page.get_by_role("button", name="Create account").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your message")).to_be_focused(timeout=WAIT_MS)
    expect(page.get_by_label("Model")).to_have_value("local/demo", timeout=WAIT_MS)

    # Send (which disables itself): the message box, while the answer streams and after it.
    page.keyboard.type("Hello by keyboard")
    page.get_by_role("button", name="Send").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    assert focused(page) == "textarea#prompt"
    chat.wait_answered()
    assert focused(page) == "textarea#prompt"

    # Stop (which disables itself): the Send button.
    page.keyboard.type(LONG_QUESTION)
    page.keyboard.press("Enter")
    expect(chat.answer.locator(".text")).to_contain_text("You said: word0", timeout=WAIT_MS)
    page.keyboard.press("Tab")  # the model picker and Send are disabled while it streams: Stop
    expect(page.get_by_role("button", name="Stop")).to_be_focused()
    page.keyboard.press("Enter")
    chat.wait_answered("stopped")
    expect(page.get_by_role("button", name="Send")).to_be_focused()

    # Rename, by Enter and by Escape: back on the item's Rename button, also once Firestore has
    # confirmed the new title (the list is repainted).
    first_title = "Hello by keyboard"
    page.get_by_role("button", name=f"Rename “{first_title}”").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("New title")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Renamed by keyboard")
    page.keyboard.press("Enter")
    renamed = page.get_by_role("button", name="Rename “Renamed by keyboard”")
    expect(renamed).to_be_focused()
    expect(page.locator("#conversation-list li[data-pending]")).to_have_count(0, timeout=WAIT_MS)
    expect(renamed).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("New title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(renamed).to_be_focused()

    # The focus ring is seen: at least 3:1 against the page behind it (WCAG 1.4.11).
    ring, behind = renamed.evaluate(
        "e => [getComputedStyle(e).outlineColor, getComputedStyle(e.closest('.panel')).backgroundColor]"
    )
    assert contrast(ring, behind) >= 3, (ring, behind)


def contrast(color: str, other: str) -> float:
    """WCAG's contrast ratio of two opaque CSS rgb() colours."""

    def luminance(css: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(color), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_screen_readers_hear_each_answer_once_when_it_is_complete(open_page) -> None:
    chat = open_page().sign_up()
    page = chat.page
    assert page.evaluate("() => document.getElementById('messages').closest('[aria-live]')") is None
    page.evaluate(
        """() => {
          window.announced = [];
          const region = document.getElementById('announcer');
          new MutationObserver(() => {
            if (region.textContent.trim()) window.announced.push(region.textContent);
          }).observe(region, {subtree: true, childList: true, characterData: true});
        }"""
    )
    chat.ask(CODE_QUESTION)
    expect(chat.answer.locator("pre code")).to_have_text(CODE, timeout=WAIT_MS)  # streamed in pieces
    chat.wait_answered()
    chat.ask("And one more")
    chat.wait_answered()
    announced = page.evaluate("() => window.announced")
    assert announced == [
        f"Answer: To sort words by length: {' '.join(CODE.split())}",  # no Copy, no cursor
        "Answer: This is the local demo model. You said: And one more",
    ]
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"
