"""Billing stays exact for the request surface: one event per call whatever ``n`` is, and a
stream of several choices stopped midway bills what was sent of all of them."""

from __future__ import annotations

import json

import httpx

from standins.lago import FakeLago
from standins.processes import FunctionServer
from tests.conftest import User

CHAT = "/v1/chat/completions"


def test_n_choices_bill_one_event_covering_all_of_them(chat_server: FunctionServer, fake_lago: FakeLago, user: User):
    body = {"messages": [{"role": "user", "content": "#words:4"}], "n": 3}
    response = httpx.post(chat_server.url + CHAT, json=body, headers=user.headers, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 3
    events = fake_lago.events(user.uid)  # delivered before the response
    assert [e["transaction_id"] for e in events] == [response.json()["id"]]
    assert events[0]["properties"]["completion_tokens"] == 12  # 4 words x 3 choices
    assert response.json()["usage"]["completion_tokens"] == 12


def test_two_streamed_choices_stopped_midway_bill_both_sent_parts(
    chat_server: FunctionServer, fake_lago: FakeLago, user: User
) -> None:
    body = {"messages": [{"role": "user", "content": "#words:60 #gap:40"}], "n": 2, "stream": True}
    received: dict[int, str] = {0: "", 1: ""}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", chat_server.url + CHAT, json=body, headers=user.headers) as response,
    ):
        call_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                for choice in json.loads(line.removeprefix("data: "))["choices"]:
                    received[choice["index"]] += choice["delta"].get("content") or ""
            if len(received[1].split()) >= 4:
                break  # the client goes away midway
    events = fake_lago.wait_for_events(user.uid, 1)
    assert [e["transaction_id"] for e in events] == [call_id]
    props = events[0]["properties"]
    assert props["partial"] == "true"
    # Each "wordN " is at least one token: both choices' received words are in the bill.
    assert len(received[0].split()) + len(received[1].split()) <= props["completion_tokens"] < 240
