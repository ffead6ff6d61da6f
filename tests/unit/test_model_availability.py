"""Models whose provider keys are missing: reported by the function that calls models, not by
usage or replay_billing, which share the instance code but get no provider keys (no server)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # as functions/main.py: no fetch

from shared.auth import Caller
from shared.billing import Billing
from shared.chat import ChatService
from shared.chat_request import parse_chat_request
from shared.errors import ApiError, ErrorCode
from shared.secret_env import unavailable_models
from shared.settings import LagoSettings, Settings

KEYLESS = "anthropic/claude-3-5-haiku-20241022"  # its ANTHROPIC_API_KEY is missing
SETTINGS = Settings.from_env({"CHAT_MODELS": f"local/demo,{KEYLESS}"})


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, message: str) -> list[logging.LogRecord]:
        return [record for record in self.records if record.getMessage() == message]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler, logger = Lines(), logging.getLogger("chat")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def deployed_service(monkeypatch: pytest.MonkeyPatch) -> Callable[[], ChatService]:
    """What every deployed instance builds at cold start, whichever function it serves."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    def build() -> ChatService:
        billing = Billing(LagoSettings(), outbox=None, deployed=True)
        missing = unavailable_models(SETTINGS.chat_models)
        assert missing == {KEYLESS: ("ANTHROPIC_API_KEY",)}
        return ChatService(billing, require_billing=False, llm_timeout_s=1, unavailable_models=missing, deployed=True)

    return build


def refusal(service: ChatService, model: str) -> ApiError:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with pytest.raises(ApiError) as raised:
        service.complete(parse_chat_request(body, SETTINGS), Caller("u1"))
    return raised.value


def test_an_instance_that_serves_no_chat_logs_no_unavailable_model(
    lines: Lines, deployed_service: Callable[[], ChatService]
) -> None:
    deployed_service()
    assert lines.named("model_unavailable") == []


def test_the_first_chat_request_reports_each_unavailable_model_once_at_error(
    lines: Lines, deployed_service: Callable[[], ChatService]
) -> None:
    service = deployed_service()
    for _ in range(2):
        refused = refusal(service, KEYLESS)
        assert refused.code is ErrorCode.UNAVAILABLE and KEYLESS in refused.message
    [line] = lines.named("model_unavailable")
    assert line.levelname == "ERROR"
    assert line.fields == {"model": KEYLESS, "missing": ["ANTHROPIC_API_KEY"]}  # type: ignore[attr-defined]
