"""Malformed input that used to be a 500 or a 502 is a 400 that says what is wrong (issue 11).

Through the session's chat server; the budget case, where the tokens are counted before the
call, is in ``test_lago_lifecycle.py`` (its server has a budget)."""

from __future__ import annotations

import pytest

from standins.processes import FunctionServer
from tests.conftest import User
from tests.support.api import chat

HUGE_INTEGER = "9" * 5000  # past Python's 4,300-digit limit for int(str)

MALFORMED = {
    "5000_digit_integer": b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": '
    + HUGE_INTEGER.encode()
    + b"}",
    "tool_calls_of_a_number": b'{"messages": [{"role": "assistant", "tool_calls": [1]}, {"role": "user", "content": "hi"}]}',
    "tool_call_function_a_number": (
        b'{"messages": [{"role": "assistant", "tool_calls": [{"function": 5}]}, {"role": "user", "content": "hi"}]}'
    ),
    "lone_surrogate": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    "lone_surrogate_in_stream": b'{"stream": true, "messages": [{"role": "user", "content": "a\\udfffb"}]}',
}


# Every case is a unit test of the parser (tests/unit/test_chat_fields.py); through the server,
# the one that reached the stream's path.
@pytest.mark.parametrize("case", ["lone_surrogate_in_stream"])
def test_malformed_input_is_400_never_500_or_502(chat_server: FunctionServer, user: User, case: str) -> None:
    response = chat(chat_server, user, MALFORMED[case])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_a_surrogate_pair_is_valid_unicode_and_served(chat_server: FunctionServer, user: User) -> None:
    response = chat(chat_server, user, b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}')
    assert response.status_code == 200, response.text
