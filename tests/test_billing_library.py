"""The billing library in this process, for what a server cannot show from outside: callback
registration under threads, a registration error, a request that makes several calls, and what
the callback needs from a call."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from shared import billing as billing_module
from shared import chat
from shared.auth import Caller
from shared.billing import Billing, ChatLagoCallback, register_callback
from shared.chat_request import ChatRequest
from shared.errors import ApiError
from shared.llm import CallContext
from shared.settings import LagoSettings
from standins.lago import API_KEY, FakeLago
from standins.openai_llm import FakeOpenAI
from tests.conftest import EVENT_CODE, OPENAI_KEY


@pytest.fixture
def clean_litellm(monkeypatch: pytest.MonkeyPatch, fake_lago: FakeLago) -> Iterator[None]:
    """LiteLLM's callback lists and our registration, restored after the test."""
    for key, value in {
        "LAGO_API_BASE": fake_lago.url,
        "LAGO_API_KEY": API_KEY,
        "LAGO_API_EVENT_CODE": EVENT_CODE,
    }.items():
        monkeypatch.setenv(key, value)
    saved = {name: list(getattr(litellm, name)) for name in ("callbacks", "success_callback", "failure_callback")}
    monkeypatch.setattr(billing_module, "_registered", None)
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries


def lago_settings(fake_lago: FakeLago) -> LagoSettings:
    return LagoSettings(api_base=fake_lago.url, api_key=API_KEY, event_code=EVENT_CODE, flush_timeout_s=2)


def ours(entries: list[object]) -> list[object]:
    return [entry for entry in entries if isinstance(entry, ChatLagoCallback)]


def test_registration_is_once_per_process_under_concurrent_calls(clean_litellm, fake_lago: FakeLago) -> None:
    settings = lago_settings(fake_lago)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        registered = list(
            pool.map(lambda _: register_callback(billing_module.PendingEvents(settings.event_code)), range(32))
        )
    assert len({id(callback) for callback in registered}) == 1
    assert len(ours(litellm.success_callback)) == 1
    assert len(ours(litellm.failure_callback)) == 1


def test_registration_removes_the_lago_string_that_would_bill_twice(clean_litellm, fake_lago: FakeLago) -> None:
    litellm.success_callback.append("lago")
    register_callback(billing_module.PendingEvents(EVENT_CODE))
    assert "lago" not in litellm.success_callback
    assert len(ours(litellm.success_callback)) == 1


def test_registration_error_is_logged_and_billing_stays_off(
    clean_litellm, fake_lago: FakeLago, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: ChatLagoCallback, pending: object) -> None:
        raise RuntimeError("callback exploded")

    monkeypatch.setattr(ChatLagoCallback, "__init__", broken)
    billing = Billing(lago_settings(fake_lago), outbox=None, deployed=False)
    assert billing.enabled is False
    errors = [r for r in caplog.records if r.getMessage() == "lago_logging_error"]
    assert [(r.levelname, r.fields["error_class"]) for r in errors] == [("ERROR", "RuntimeError")]  # type: ignore[attr-defined]


def test_a_request_with_several_calls_bills_each_once(
    clean_litellm, fake_lago: FakeLago, fake_llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    billing = Billing(lago_settings(fake_lago), outbox=None, deployed=False)
    request_billing = billing.for_request(Caller("multi-call-user"))
    request = ChatRequest("openai/gpt-4o-mini", [{"role": "user", "content": "a b"}], False, False, {"max_tokens": 20})
    failing = ChatRequest("openai/gpt-4o-mini", [{"role": "user", "content": "#status:500"}], False, False, {})
    first = chat.complete_json(request, request_billing, 10)
    with pytest.raises(ApiError):
        chat.complete_json(failing, request_billing, 10)  # a failed retry in between bills nothing
    second = chat.complete_json(request, request_billing, 10)
    events = fake_lago.events("multi-call-user")
    assert [e["transaction_id"] for e in events] == [first["id"], second["id"]]
    assert len(billing.pending) == 0, "nothing left behind for the callback to grow"


class _Signalling(billing_module.PendingEvents):
    """Pending events that say when LiteLLM's callback delivered one."""

    def __init__(self, event_code: str) -> None:
        super().__init__(event_code)
        self.collected = threading.Event()

    def collect(self, call_id: str, response: Any) -> None:
        super().collect(call_id, response)
        self.collected.set()


def test_callback_collects_by_call_id_without_litellm_metadata(clean_litellm) -> None:
    # LiteLLM's own LagoLogger reads the payer from metadata; our subclass needs only litellm_call_id.
    pending = _Signalling(EVENT_CODE)
    register_callback(pending)
    call = CallContext(call_id="chatcmpl-no-metadata", timestamp="1.000", uid="u1", payer="team-1", model="gpt-4o-mini")
    pending.expect(call)
    litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        mock_response="hello",
        litellm_call_id=call.call_id,
    )
    assert pending.collected.wait(10), "LiteLLM never called our callback"
    event = pending.take(call.call_id)
    assert event is not None
    assert (event["transaction_id"], event["external_subscription_id"]) == (call.call_id, "team-1")
