"""Public model ids (CHAT_MODELS' ID=MODEL entries) and the local model after a tool's result."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import pytest

from shared.local_model import _answer
from shared.settings import Settings, SettingsError


def test_ids_map_to_litellm_models_and_both_names_are_accepted() -> None:
    settings = Settings.from_env({"CHAT_MODELS": "gpt-4o-mini=openai/gpt-4o-mini,local/demo,demo=local/demo"})
    assert settings.chat_models == ("openai/gpt-4o-mini", "local/demo")
    assert list(settings.model_ids) == ["gpt-4o-mini", "local/demo", "demo"]  # as listed, in order
    assert settings.model_for("gpt-4o-mini") == settings.model_for("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert settings.model_for("demo") == "local/demo" and settings.model_for("gpt-4o") is None
    assert settings.default_model == "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    "value",
    [
        "a=",
        "=local/demo",
        "demo=local/demo,demo=openai/gpt-4o-mini",
        "openai/gpt-4o-mini=local/demo,openai/gpt-4o-mini",
    ],
)
def test_malformed_or_ambiguous_ids_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="CHAT_MODELS"):
        Settings.from_env({"CHAT_MODELS": value})


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "final_result", "parameters": {"type": "object"}}},
]
AFTER_TOOL = [
    {"role": "user", "content": "Weather in Paris? get_weather"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
]


def test_the_local_model_answers_a_tool_result_with_text_that_uses_it() -> None:
    answer = _answer(AFTER_TOOL, {"tools": TOOLS}, 0)
    assert answer.tool_call is None and answer.text is not None and "get_weather: sunny, 21 C" in answer.text


def test_after_a_tool_result_a_forced_call_takes_the_first_tool_not_yet_called() -> None:
    answer = _answer(AFTER_TOOL, {"tools": TOOLS, "tool_choice": "required"}, 0)
    assert answer.tool_call is not None and answer.tool_call["function"]["name"] == "final_result"


def test_the_trigger_still_calls_a_tool_the_user_names() -> None:
    answer = _answer(AFTER_TOOL[:1], {"tools": TOOLS}, 0)
    assert answer.tool_call is not None and answer.tool_call["function"]["name"] == "get_weather"
