"""Per-payer rate limits through the real server: OpenAI's 429 shape and x-ratelimit-* headers."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from openai import OpenAI, RateLimitError

from standins.processes import FunctionServer
from tests.conftest import DEFAULT_MODEL, User
from tests.support.api import CHAT, ask, chat

RPM, TPM, CONCURRENT = 4, 3000, 2


@pytest.fixture(scope="module")
def limited_server(function_server: Callable[..., FunctionServer]) -> FunctionServer:
    return function_server(
        CHAT_RATE_LIMIT_RPM=str(RPM),
        CHAT_RATE_LIMIT_TPM=str(TPM),
        CHAT_MAX_CONCURRENT=str(CONCURRENT),
        # The other tests here spend ~0.01 cent of it; the last spends it all.
        CHAT_PROJECT_BUDGET_CENTS="1",
        CHAT_MODELS="openai/gpt-4o-mini,local/demo",  # the project cap needs every model priced
    )


HI = ask("hi", max_tokens=50)


def until_refused(call: Callable[[], httpx.Response], most: int) -> tuple[list[httpx.Response], httpx.Response]:
    """``call`` until it is refused, at most ``most`` times: ``(the served answers, the refusal)``.

    The windows are UTC minutes, and calls may straddle two: up to twice a limit can pass before
    the refusal. How much each answer leaves is counted in tests/unit/test_rate_limits.py, with a
    clock of its own."""
    served = []
    for _ in range(most):
        answer = call()
        if answer.status_code != 200:
            return served, answer
        served.append(answer)
    raise AssertionError(f"{most} calls were all served")


def test_requests_past_the_rpm_get_openais_429_and_every_answer_says_what_is_left(
    limited_server: FunctionServer, user: User
) -> None:
    answers, refused = until_refused(lambda: chat(limited_server, user, HI), 2 * RPM + 1)
    assert RPM <= len(answers) <= 2 * RPM
    assert answers[-1].headers["x-ratelimit-remaining-requests"] == "0"
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert 0 <= int(answer.headers["x-ratelimit-remaining-requests"]) < RPM
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
        assert answer.headers["x-ratelimit-limit-tokens"] == str(TPM)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "CHAT_RATE_LIMIT_RPM" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_past_the_tpm_are_refused_as_tokens(limited_server: FunctionServer, user: User) -> None:
    # One call's prompt + max_tokens (as OpenAI counts) fits the TPM, two do not.
    _, refused = until_refused(lambda: chat(limited_server, user, ask("hi", max_tokens=2000)), 3)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert "CHAT_RATE_LIMIT_TPM" in refused.json()["error"]["message"]
    assert int(refused.headers["x-ratelimit-remaining-tokens"]) < 2000


def test_requests_in_flight_past_the_cap_are_refused_and_the_slot_comes_back(
    limited_server: FunctionServer, user: User
) -> None:
    body = {"model": DEFAULT_MODEL, "max_tokens": 50, "stream": True}
    body["messages"] = [{"role": "user", "content": "#words:8 #gap:250"}]
    opened = threading.Barrier(CONCURRENT + 1)
    statuses: list[int] = []

    def stream() -> None:
        with httpx.stream("POST", limited_server.url + CHAT, json=body, headers=user.headers, timeout=30) as r:
            statuses.append(r.status_code)
            opened.wait(10)
            r.read()

    threads = [threading.Thread(target=stream) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    opened.wait(10)  # both streams are open
    refused = chat(limited_server, user, HI)
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * CONCURRENT
    assert refused.status_code == 429
    assert "CHAT_MAX_CONCURRENT" in refused.json()["error"]["message"]
    assert chat(limited_server, user, HI).status_code == 200, "slots are released when the streams end"


def test_the_official_client_sees_a_rate_limit_error_it_can_retry(limited_server: FunctionServer, user: User) -> None:
    client = OpenAI(base_url=limited_server.url + "/v1", api_key=user.token, max_retries=0)
    with pytest.raises(RateLimitError) as raised:
        for _ in range(2 * RPM + 1):  # RPM, or twice that if the calls straddle a minute
            client.chat.completions.create(
                model=DEFAULT_MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
            )
    assert raised.value.response.headers["retry-after"]
    assert raised.value.code == "rate_limit_exceeded"


# Last in this module: it spends the project's budget for the month on this server.
def test_the_project_cap_stops_every_payer_with_its_own_code_and_one_error_line(
    limited_server: FunctionServer, new_user: Callable[[], User]
) -> None:
    # Each call really costs about its worst case (~0.12 cent: 2,000 words of gpt-4o-mini).
    statuses = []
    for _ in range(15):
        response = chat(limited_server, new_user(), ask("#words:2000", max_tokens=2000))
        statuses.append(response.status_code)
        if response.status_code == 402:
            break
    assert statuses[-1] == 402 and set(statuses[:-1]) == {200}, statuses
    assert response.json()["error"]["code"] == "project_budget_reached"
    again = chat(limited_server, new_user(), ask("#words:2000", max_tokens=2000))  # another payer, the same call
    assert again.status_code == 402 and again.json()["error"]["code"] == "project_budget_reached"
    lines = [line for line in limited_server.log_lines() if line["message"] == "project_budget_reached"]
    assert len(lines) == 1 and lines[0]["severity"] == "ERROR"
