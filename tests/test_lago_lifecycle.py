"""Lago customers made on first use, usage for the user, and budgets enforced before the call."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from standins.lago import FakeLago
from standins.openai_llm import FakeOpenAI
from standins.processes import FunctionServer
from tests.conftest import User
from tests.support.api import CHAT, ask, chat
from tests.support.polling import eventually

PLAN = "chat_pay_as_you_go"
PRICEY = "openai/gpt-4"  # $30/M prompt, $60/M completion: 1,000 max tokens hold ~6 cents
LIFECYCLE_ENV = {
    "LAGO_PLAN_CODE": PLAN,
    "CHAT_BUDGET_CENTS": "100",
    "CHAT_USAGE_CACHE_S": "0",
    "CHAT_MODELS": f"openai/gpt-4o-mini,{PRICEY}",
}


@pytest.fixture(scope="module")
def lifecycle_server(function_server) -> FunctionServer:
    return function_server(**LIFECYCLE_ENV)


@pytest.fixture(scope="module")
def usage_server(function_server) -> FunctionServer:
    return function_server(target="usage", **LIFECYCLE_ENV)


def pricey(server: FunctionServer, user: User, text: str = "hi") -> httpx.Response:
    return chat(server, user, ask(text, model=PRICEY, max_tokens=1000))


# --- provisioning ---------------------------------------------------------------------------


def test_first_call_creates_customer_and_subscription(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    assert chat(lifecycle_server, user, ask("hi")).status_code == 200
    customer = fake_lago.customers[user.uid]
    assert customer["email"] == user.email
    subscription = fake_lago.subscriptions[user.uid]
    assert (subscription["external_customer_id"], subscription["plan_code"]) == (user.uid, PLAN)
    assert [e["external_subscription_id"] for e in fake_lago.events(user.uid)] == [user.uid]


def test_existing_customer_is_never_overwritten(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_customer(user.uid, name="ACME Corp", email="billing@acme.example")
    seen = len(fake_lago.account_requests)
    assert chat(lifecycle_server, user, ask("hi")).status_code == 200
    customer = fake_lago.customers[user.uid]
    assert (customer["name"], customer["email"]) == ("ACME Corp", "billing@acme.example")
    asked = fake_lago.account_requests[seen:]
    assert f"GET /api/v1/customers/{user.uid}" in asked and "POST /api/v1/customers" not in asked
    assert fake_lago.subscriptions[user.uid]["plan_code"] == PLAN


@pytest.fixture(scope="module")
def team_server(function_server) -> FunctionServer:
    return function_server(**LIFECYCLE_ENV, LAGO_API_CHARGE_BY="team_id")


def team_member(auth_emulator, new_user, team: str) -> User:
    member = new_user()
    claims = json.dumps({"team_id": team})
    auth_emulator.admin("POST", "accounts:update", {"localId": member.uid, "customAttributes": claims})
    member.token = auth_emulator.sign_in(member.email)
    return member


def test_team_member_never_renames_the_team_customer(team_server, fake_lago: FakeLago, auth_emulator, new_user) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    fake_lago.add_customer(team, name="ACME Corp", email="billing@acme.example")
    member = team_member(auth_emulator, new_user, team)
    assert chat(team_server, member, ask("hi")).status_code == 200
    customer = fake_lago.customers[team]
    assert (customer["name"], customer["email"]) == ("ACME Corp", "billing@acme.example"), "was: Free Pizza LLC"
    assert fake_lago.subscriptions[team]["external_customer_id"] == team


def test_new_team_customer_takes_no_member_email_or_name(
    team_server, fake_lago: FakeLago, auth_emulator, new_user
) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    member = team_member(auth_emulator, new_user, team)
    assert chat(team_server, member, ask("hi")).status_code == 200
    customer = fake_lago.customers[team]
    assert (customer["name"], customer["email"]) == (None, None)
    assert member.email not in json.dumps(customer)


def test_provisioning_is_cached_per_instance(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    chat(lifecycle_server, user, ask("hi"))
    before = [r for r in fake_lago.account_requests if r.startswith("POST")]
    chat(lifecycle_server, user, ask("hi"))
    assert [r for r in fake_lago.account_requests if r.startswith("POST")] == before


def test_concurrent_first_calls_on_two_instances_make_one_customer_and_subscription(
    lifecycle_server, function_server, fake_lago: FakeLago, user: User
) -> None:
    other = function_server(**LIFECYCLE_ENV)
    servers = [lifecycle_server, other] * 5
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda s: chat(s, user, ask("hi")), servers))
    assert [r.status_code for r in responses] == [200] * 10
    creates = [r for r in fake_lago.account_requests if r == "POST /api/v1/subscriptions"]
    assert user.uid in fake_lago.subscriptions and list(fake_lago.customers).count(user.uid) == 1
    assert len(creates) >= 1
    assert len(fake_lago.events(user.uid)) == 10
    for server in (lifecycle_server, other):
        lines = [line for line in server.log_lines() if line["message"] == "lago_provisioned"]
        assert len(lines) >= 1


def test_provisioning_failure_does_not_block_chat(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.plan_accounts("500")
    response = chat(lifecycle_server, user, ask("hi"))
    assert response.status_code == 200
    assert [e["transaction_id"] for e in fake_lago.events(user.uid)] == [response.json()["id"]]
    failed = [line for line in lifecycle_server.log_lines() if line["message"] == "lago_provisioning_failed"]
    assert failed and failed[-1]["status"] == 500
    assert user.uid not in str(failed)


def test_provisioning_is_off_without_a_plan_code(chat_server, fake_lago: FakeLago, user: User) -> None:
    chat(chat_server, user, ask("hi"))
    assert user.uid not in fake_lago.customers
    lines = [line["message"] for line in chat_server.log_lines()]
    assert lines.count("lago_provisioning_off") == 1


# --- usage for the user ---------------------------------------------------------------------


def test_usage_shows_the_period_amount_and_tokens_per_model(lifecycle_server, usage_server, user: User) -> None:
    chat(lifecycle_server, user, ask("hi"))
    chat(lifecycle_server, user, ask("hi"))
    pricey(lifecycle_server, user)
    response = httpx.get(usage_server.url + "/", headers=user.headers, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "usage" and body["currency"] == "USD"
    assert body["period"]["from"] and body["period"]["to"]
    models = {m["model"]: m for m in body["models"]}
    assert models["openai/gpt-4o-mini"]["tokens"] == 2 * 9 and models["openai/gpt-4o-mini"]["requests"] == 2
    assert models[PRICEY]["tokens"] == 9
    assert body["amount_cents"] == sum(m["amount_cents"] for m in body["models"])
    assert body["budget"]["limit_cents"] == 100
    assert body["budget"]["remaining_cents"] == 100 - body["amount_cents"]


def test_usage_of_a_new_user_is_zero_in_the_plans_currency_and_period(
    usage_server, fake_lago: FakeLago, user: User
) -> None:
    body = httpx.get(usage_server.url + "/", headers=user.headers, timeout=30).json()
    assert (body["amount_cents"], body["models"]) == (0, [])
    # Reading usage subscribes a new user, as a first chat would: Lago then has a period to report.
    assert fake_lago.subscriptions[user.uid]["plan_code"] == PLAN
    assert body["currency"] == "USD" and body["period"]["from"] and body["period"]["to"]


def test_usage_needs_a_valid_token(usage_server) -> None:
    response = httpx.get(usage_server.url + "/", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(usage_server.url + "/", timeout=30).status_code == 405


def test_usage_when_lago_fails_is_a_json_503(usage_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.plan_accounts("500", "500")
    response = httpx.get(usage_server.url + "/", headers=user.headers, timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


# --- budgets --------------------------------------------------------------------------------


REFRESHED = "what changed in Lago reached the instance (a background refresh)"


def llm_requests_with(fake_llm: FakeOpenAI, marker: str) -> int:
    return sum(marker in str(r["messages"]) for r in fake_llm.requests)


# The usage a payer had before its first call here (spent earlier in the period) is read on
# that first call; the ledger starts from it.
@pytest.mark.parametrize(("used", "status"), [(0, 200), (90, 200), (100, 402), (150, 402), (97, 402)])
def test_budget_under_at_and_over_the_limit(
    lifecycle_server, fake_lago: FakeLago, fake_llm: FakeOpenAI, user: User, used: int, status: int
) -> None:
    fake_lago.add_usage(user.uid, used)
    marker = f"budget-{user.uid}"
    response = pricey(lifecycle_server, user, marker)
    assert response.status_code == status, response.text
    if status == 402:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
        assert llm_requests_with(fake_llm, marker) == 0, "refused before the provider was paid"


def test_per_customer_budget_from_lago_metadata(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 150)
    assert pricey(lifecycle_server, user).status_code == 402
    fake_lago.set_budget(user.uid, 500)
    eventually(lambda: pricey(lifecycle_server, user).status_code, lambda status: status == 200, what=REFRESHED)


def test_usage_spent_elsewhere_is_reconciled_from_lago(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    assert pricey(lifecycle_server, user).status_code == 200
    fake_lago.add_usage(user.uid, 150)  # e.g. billed by another system on the same metric
    eventually(lambda: pricey(lifecycle_server, user).status_code, lambda status: status == 402, what=REFRESHED)


def test_concurrent_calls_at_the_edge_do_not_all_slip_past(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 70)  # 30 cents left: four calls' worst case (~6 cents each) fit
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: pricey(lifecycle_server, user, "#sleep:1").status_code, range(10)))
    assert sorted(statuses) == [200] * 4 + [402] * 6


def test_budget_is_released_when_the_call_fails(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 90)  # room for one worst case
    assert pricey(lifecycle_server, user, "#status:500").status_code == 502
    assert pricey(lifecycle_server, user).status_code == 200


def test_streams_hold_and_settle_the_budget_too(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 90)
    slow = "#words:10 #gap:300"  # the stream stays open for ~3 s
    body = {"model": PRICEY, "max_tokens": 1000, "stream": True, "messages": [{"role": "user", "content": slow}]}
    with httpx.stream("POST", lifecycle_server.url + CHAT, json=body, headers=user.headers, timeout=30) as r:
        assert r.status_code == 200
        assert pricey(lifecycle_server, user).status_code == 402, "the open stream holds the room"
        r.read()
    eventually(
        lambda: pricey(lifecycle_server, user).status_code,
        lambda status: status == 200,
        what="the settled stream's room is free again",
        timeout=3,
    )


def test_usage_answer_matches_the_openapi_document(lifecycle_server, usage_server, user: User) -> None:
    import jsonschema
    import yaml

    from standins.processes import ROOT

    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    schema = document["paths"]["/api/usage"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    chat(lifecycle_server, user, ask("hi"))
    body = httpx.get(usage_server.url + "/", headers=user.headers, timeout=30).json()
    jsonschema.Draft202012Validator(schema).validate(body)


def test_malformed_tool_calls_with_a_budget_on_are_400(lifecycle_server, user: User) -> None:
    # The budget counts the prompt's tokens before the call: that count used to fail with a 502.
    messages = [{"role": "assistant", "tool_calls": [{"function": 5}]}, {"role": "user", "content": "hi"}]
    response = chat(lifecycle_server, user, {"messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].tool_calls"


# --- the request surface in the budget's worst case (issue 12) ----------------------------------


def test_a_5000_token_tool_schema_is_reserved(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 90)  # 10 cents left; 5,000 prompt tokens of gpt-4 are 15 cents
    description = " ".join(f"w{i}" for i in range(2500))
    tool = {"type": "function", "function": {"name": "lookup", "description": description, "parameters": {}}}
    assert chat(lifecycle_server, user, ask(model=PRICEY, max_tokens=1)).status_code == 200
    refused = chat(lifecycle_server, user, ask(model=PRICEY, max_tokens=1, tools=[tool]))
    assert refused.status_code == 402, refused.text


def test_n_multiplies_the_reserved_completion(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    fake_lago.add_usage(user.uid, 90)  # 10 cents left: one choice of 1,000 tokens (6 cents) fits, three do not
    assert chat(lifecycle_server, user, ask(model=PRICEY, max_tokens=1000)).status_code == 200
    assert chat(lifecycle_server, user, ask(model=PRICEY, max_tokens=1000, n=3)).status_code == 402


# --- Lago reads: one bounded GET, no retries, never a wait behind another request ----------


def usage_gets(fake_lago: FakeLago) -> list[str]:
    return [r for r in fake_lago.account_requests if r.startswith("GET")]


def test_lago_429_on_usage_costs_one_bounded_read_and_no_retries(
    lifecycle_server, fake_lago: FakeLago, new_user: Callable[[], User]
) -> None:
    chat(lifecycle_server, new_user(), ask("hi"))  # the instance is warm: what is timed is Lago's part
    user = new_user()
    # Provisioning (the customer's lookup, its 404, then two POSTs) and the metadata read pass;
    # then usage answers 429, as Lago does under load. lago-python-client's default retries it
    # three times, sleeping 1 + 2 + 4 s.
    fake_lago.plan_accounts("slow:0", "slow:0", "slow:0", "slow:0", "429", "429", "429", "429")
    before = len(usage_gets(fake_lago))
    started = time.monotonic()
    response = chat(lifecycle_server, user, ask("hi"))
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 4, f"the chat waited {elapsed:.1f} s for Lago"
    gets = usage_gets(fake_lago)[before:]
    assert sum("current_usage" in g for g in gets) == 1, gets


def test_a_slow_lago_does_not_hold_the_payers_requests(lifecycle_server, fake_lago: FakeLago, user: User) -> None:
    assert chat(lifecycle_server, user, ask("hi")).status_code == 200  # the payer's usage is now known
    fake_lago.plan_accounts("hang:4", "hang:4", "hang:4", "hang:4")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        statuses = list(pool.map(lambda _: chat(lifecycle_server, user, ask("hi")).status_code, range(3)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 3
    assert elapsed < 3, f"requests waited {elapsed:.1f} s behind a Lago read (it hangs 4 s)"
