"""The Responses API and the agent frameworks, with the real clients, against the running function.

A server whose ``CHAT_MODELS`` gives both models public ids (``gpt-4o-mini``, ``demo``), as the
clients with default settings need them: the openai Python and Node packages (Responses create,
stream, a tool round trip, structured output), openai-agents with its default settings (the
Responses API, a function tool, run and streamed), pydantic-ai (a tool round trip, structured
output). Every call is billed exactly once, with the tokens the answer reports, under the LiteLLM
model.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator

import openai
import pytest
from pydantic import BaseModel

from standins.lago import FakeLago
from standins.processes import ROOT, FunctionServer
from tests.conftest import DEFAULT_MODEL, User

# Public id -> the LiteLLM model it is billed under.
MODELS = {"gpt-4o-mini": DEFAULT_MODEL, "demo": "local/demo"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def ids_server(function_server: Callable[..., FunctionServer]) -> FunctionServer:
    ids = ",".join(f"{public}={model}" for public, model in MODELS.items())
    return function_server(CHAT_MODELS=f"{DEFAULT_MODEL},local/demo,{ids}")


@pytest.fixture(params=list(MODELS))
def public_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(server: FunctionServer, user: User) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=user.token, max_retries=0, timeout=30)


def billed(fake_lago: FakeLago, user: User) -> list[dict[str, object]]:
    """The user's Lago events: all there when the answer's last byte has arrived."""
    return fake_lago.events(user.uid)


def test_models_retrieve_finds_a_public_id_and_a_litellm_name(ids_server: FunctionServer, user: User) -> None:
    openai_client = client(ids_server, user)
    assert openai_client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    assert openai_client.models.retrieve(DEFAULT_MODEL).id == DEFAULT_MODEL
    listed = [model.id for model in openai_client.models.list()]
    assert listed == [DEFAULT_MODEL, "local/demo", *MODELS]
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("openai/gpt-5-nope")


def test_responses_create_is_billed_once_with_the_tokens_it_reports(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    raw = client(ids_server, user).responses.with_raw_response.create(model=public_id, input="Hello there")
    response = raw.parse()
    assert response.output_text and response.status == "completed"
    [event] = billed(fake_lago, user)
    assert raw.headers["x-request-id"] == response.id == event["transaction_id"]
    properties = event["properties"]
    assert properties["model"] == MODELS[public_id]
    assert (properties["prompt_tokens"], properties["completion_tokens"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    assert response.usage.model_extra["cost"] == properties["response_cost"]


def test_responses_stream_is_billed_once_with_the_tokens_it_reports(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    text = ""
    with client(ids_server, user).responses.stream(model=public_id, input="Stream this please") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert text == final.output_text != ""
    [event] = billed(fake_lago, user)
    assert event["transaction_id"] == final.id
    assert event["properties"]["completion_tokens"] == final.usage.output_tokens


def test_responses_tool_round_trip_takes_two_calls(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    openai_client = client(ids_server, user)
    first = openai_client.responses.create(
        model=public_id, input="Weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = openai_client.responses.create(
        model=public_id,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call,
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert [item.type for item in second.output] == ["message"] and second.output_text
    assert len(billed(fake_lago, user)) == 2


def test_responses_parse_gives_structured_output(ids_server: FunctionServer, user: User, public_id: str) -> None:
    parsed = client(ids_server, user).responses.parse(model=public_id, input="Invent a person.", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)


def test_the_node_openai_package_speaks_the_responses_api(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    node = shutil.which("node")
    assert node, "Node is needed (scripts/setup installs the openai package from package.json)"
    result = subprocess.run(
        [node, str(ROOT / "tests" / "clients" / "openai_responses.mjs"), f"{ids_server.url}/v1", user.token, public_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["created"]["text"] and out["streamed"]["text"] == out["streamed"]["final"]
    assert out["call"]["name"] == "get_weather" and "city" in out["call"]["arguments"]
    assert out["answer"] and set(out["person"]) == {"name", "age"}
    assert len(billed(fake_lago, user)) == 5  # create, stream, the tool's two calls, the person


# --- the agent frameworks ------------------------------------------------------------------------


@pytest.fixture
def agents_client(ids_server: FunctionServer, user: User) -> Iterator[None]:
    """openai-agents' defaults, given the function as its client; tracing off (the Firebase ID
    token must never be sent to OpenAI's trace endpoint as a key)."""
    import agents

    agents.set_default_openai_client(
        openai.AsyncOpenAI(base_url=f"{ids_server.url}/v1", api_key=user.token, max_retries=0), use_for_tracing=False
    )
    agents.set_tracing_disabled(True)
    yield


def weather_agent(public_id: str, calls: list[str]) -> object:
    import agents

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return agents.Agent(name="Weather", instructions="Use get_weather.", tools=[get_weather], model=public_id)


def _prompt(public_id: str) -> str:
    # What makes each model call the tool unforced: the local model's tool name, the stand-in's #tool.
    return "Weather in Paris? get_weather" if public_id == "demo" else "Weather in Paris? #tool"


def test_an_openai_agents_agent_with_a_tool_finishes_in_two_model_calls(
    agents_client: None, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    import agents

    calls: list[str] = []
    result = agents.Runner.run_sync(weather_agent(public_id, calls), _prompt(public_id))
    assert len(calls) == 1 and isinstance(result.final_output, str) and result.final_output
    assert len(billed(fake_lago, user)) == 2


def test_an_openai_agents_agent_streamed_finishes_in_two_model_calls(
    agents_client: None, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    import agents

    calls: list[str] = []

    async def run() -> tuple[str, int]:
        streamed = agents.Runner.run_streamed(weather_agent(public_id, calls), _prompt(public_id))
        deltas = 0
        async for event in streamed.stream_events():
            deltas += event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
        return str(streamed.final_output), deltas

    output, deltas = asyncio.run(run())
    assert output and deltas > 0 and len(calls) == 1
    assert len(billed(fake_lago, user)) == 2


def pydantic_ai_model(server: FunctionServer, user: User, public_id: str) -> object:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(public_id, provider=OpenAIProvider(base_url=f"{server.url}/v1", api_key=user.token))


def test_a_pydantic_ai_agent_tool_round_trip_takes_two_calls(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    from pydantic_ai import Agent

    calls: list[str] = []
    agent = Agent(pydantic_ai_model(ids_server, user, public_id), instructions="Use get_weather.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    result = agent.run_sync(_prompt(public_id))
    assert len(calls) == 1 and result.output
    assert len(billed(fake_lago, user)) == 2


def test_a_pydantic_ai_agent_gives_structured_output(
    ids_server: FunctionServer, user: User, fake_lago: FakeLago, public_id: str
) -> None:
    from pydantic_ai import Agent

    result = Agent(pydantic_ai_model(ids_server, user, public_id), output_type=Person).run_sync("Invent a person.")
    assert isinstance(result.output, Person)
    assert len(billed(fake_lago, user)) == 1
