"""Every billed model has a price: with a budget (or a metric that bills ``response_cost``), a
model LiteLLM's cost map does not know is refused at cold start unless ``CHAT_MODEL_PRICES``
prices it; priced, its calls count against the budget like any other."""

from __future__ import annotations

import pytest

from standins.lago import FakeLago
from tests.conftest import MODEL_PRICE as PRICE
from tests.conftest import UNPRICED_MODEL as UNPRICED
from tests.conftest import PriceServers, User
from tests.support.api import ask, chat

HELLO = ask("hello", model=UNPRICED, max_tokens=10)


def test_unpriced_model_with_a_budget_is_refused_at_cold_start_never_free(
    price_servers: PriceServers, fake_lago: FakeLago, user: User
) -> None:
    server = price_servers.unpriced
    statuses = [chat(server, user, HELLO).status_code for _ in range(20)]
    assert statuses == [503] * 20, "before: 20 calls of 1 cent's budget went through, billed 0"
    assert fake_lago.events(user.uid) == []
    [invalid] = [line for line in server.log_lines() if line["message"] == "settings_invalid"]
    assert invalid["severity"] == "ERROR" and invalid["models"] == [UNPRICED]
    assert UNPRICED in invalid["detail"] and "CHAT_MODEL_PRICES" in invalid["detail"]


def test_operator_price_makes_the_model_billable_and_bounded_by_the_budget(
    price_servers: PriceServers, fake_lago: FakeLago, user: User
) -> None:
    server = price_servers.priced
    statuses = []
    for _ in range(20):
        statuses.append(chat(server, user, HELLO).status_code)
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 402 and 1 <= len(statuses) - 1 <= 6, statuses
    events = fake_lago.events(user.uid)
    assert len(events) == len(statuses) - 1
    for event in events:
        props = event["properties"]
        expected = (
            props["prompt_tokens"] * PRICE["input_cost_per_token"]
            + props["completion_tokens"] * PRICE["output_cost_per_token"]
        )
        assert float(props["response_cost"]) == pytest.approx(expected)
