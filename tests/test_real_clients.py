"""The ecosystem's clients against the running function, as people use them: LangChain's
ChatOpenAI (tools and structured output) and the Vercel AI SDK run with Node."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from standins.processes import ROOT, FunctionServer
from tests.conftest import DEFAULT_MODEL, User


@tool
def get_weather(city: str, days: int) -> str:
    """The weather in a city for the next days."""
    return "sunny"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def langchain_model(server: FunctionServer, user: User, model: str = DEFAULT_MODEL) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{server.url}/v1", api_key=user.token, model=model, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "local/demo"])
def test_langchain_bind_tools_gets_the_tool_call(chat_server: FunctionServer, user: User, model: str) -> None:
    bound = langchain_model(chat_server, user, model).bind_tools([get_weather], tool_choice="get_weather")
    message = bound.invoke("What is the weather in Paris?")
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert set(message.tool_calls[0]["args"]) == {"city", "days"}


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "local/demo"])
def test_langchain_with_structured_output_parses(chat_server: FunctionServer, user: User, model: str) -> None:
    person = langchain_model(chat_server, user, model).with_structured_output(Person).invoke("Invent a person.")
    assert isinstance(person, Person) and isinstance(person.age, int)


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "local/demo"])
def test_vercel_ai_sdk_generate_text_with_a_required_tool_and_generate_object(
    chat_server: FunctionServer, user: User, model: str
) -> None:
    node = shutil.which("node")
    assert node, "Node is needed (scripts/setup installs the AI SDK from package.json)"
    result = subprocess.run(
        [node, str(ROOT / "tests" / "clients" / "ai_sdk.mjs"), f"{chat_server.url}/v1", user.token, model],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [c["name"] for c in out["toolCalls"]] == ["get_weather"]
    assert set(out["toolCalls"][0]["input"]) == {"city", "days"}
    assert out["finishReason"] == "tool-calls"
    assert set(out["object"]) == {"name", "age"} and isinstance(out["object"]["age"], int)
