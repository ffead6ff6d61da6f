"""The embedded local model (``local/...``): chat that works offline with no provider key.

A LiteLLM ``CustomLLM`` provider, so the whole LiteLLM pipeline (callbacks, usage, cost)
runs as it does for a real provider. Answers are deterministic; token counts are real
(LiteLLM's bundled tokenizer). Enabled only when a ``local/`` model is in ``CHAT_MODELS``.

Beyond text it answers as a provider would: with ``tools`` offered it calls one when
``tool_choice`` is ``required`` or names it, or when the last message is the user's and contains
an offered tool's name (the trigger; arguments are built from the tool's parameter schema: its
required properties, strings filled with the user's words). When the last message is a tool's
result it answers with text that uses it (so an agent's loop ends), unless a tool call is forced:
``required`` then calls the first offered tool not yet called; ``response_format`` ``json_object`` gets
``{"answer": ...}`` and ``json_schema`` an object of the schema's required properties; ``n``
gives n choices and ``stop`` cuts the answer at the first stop sequence. JSON and streamed.

A question that starts with ``/echo`` and a space or newline is answered with the rest of it,
verbatim (newlines kept): how a developer, or the browser tests, put any Markdown (or hostile
HTML) into an answer of the real pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import (
    Choices,
    Delta,
    GenericStreamingChunk,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)

PROVIDER = "local"
# Priced like a small hosted model, so that local billing shows real amounts.
_INPUT_COST_PER_TOKEN = 0.15e-6
_OUTPUT_COST_PER_TOKEN = 0.60e-6
_TOKENIZER_MODEL = "gpt-4o-mini"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


ECHO = "/echo"
_ECHO_LIMIT = 8000  # characters: an answer, not a way round the request size limit


def _tool_results(messages: list[dict[str, Any]]) -> str:
    """The trailing tool results, each after its tool's name: ``get_weather: sunny``."""
    names = {
        call.get("id"): call.get("function", {}).get("name", "tool")
        for message in messages
        for call in message.get("tool_calls") or []
    }
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        content = message.get("content")
        text = (
            " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            if isinstance(content, list)
            else content
        )
        results.append(f"{names.get(message.get('tool_call_id'), 'tool')}: {' '.join(str(text or '').split())[:200]}")
    return "; ".join(reversed(results))


def answer_for(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer: a short echo of the last user message (or its ``/echo`` text),
    or, after a tool's result, the result."""
    if messages and messages[-1].get("role") == "tool":
        return f"This is the local demo model. The tools answered: {_tool_results(messages)}"
    last = _last_user_text(messages)
    if last.startswith(ECHO) and last[len(ECHO) : len(ECHO) + 1] in (" ", "\n"):
        return last[len(ECHO) + 1 :][:_ECHO_LIMIT] or "This is the local demo model."
    said = " ".join(last.split())
    if len(said) > 200:
        said = said[:200] + "..."
    return f"This is the local demo model. You said: {said}" if said else "This is the local demo model."


def example_for(schema: Any, text: str) -> Any:
    """A value that validates against a simple JSON Schema: each required property, typed
    (strings are the user's words); ``{}`` for a schema too odd to read."""
    try:
        return _example(schema, text)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError):
        return {}


def _example(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _example(props.get(name), text) for name in schema.get("required") or []}
    if kind == "array":
        return [_example(schema.get("items"), text) for _ in range(min(int(schema.get("minItems") or 0), 10))]
    return {"integer": 1, "number": 1, "boolean": True, "null": None}.get(kind, text)


def _tool_to_call(tools: list[dict[str, Any]], choice: Any, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trigger: a named or ``required`` tool_choice, or the user's last message naming an
    offered tool. After a tool's result only a forced call is made (``required``: the first tool
    not yet called), so an agent's loop ends."""
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        return next((t for t in tools if t["function"]["name"] == name), None)
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    if choice == "required":
        called = {c.get("function", {}).get("name") for m in messages for c in m.get("tool_calls") or []}
        return next((t for t in tools if t["function"]["name"] not in called), tools[0]) if after_tool else tools[0]
    if after_tool:
        return None
    said = _last_user_text(messages)
    return next((t for t in tools if t["function"]["name"].lower() in said.lower()), None)


@dataclass(frozen=True)
class _Answer:
    text: str | None
    tool_call: dict[str, Any] | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"


def _answer(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> _Answer:
    said = " ".join(_last_user_text(messages).split())
    tool = _tool_to_call(params.get("tools") or [], params.get("tool_choice", "auto"), messages)
    if tool is not None:
        arguments = json.dumps(example_for(tool["function"].get("parameters") or {"type": "object"}, said))
        name = tool["function"]["name"]
        return _Answer(
            None, {"id": f"call_{index}_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    response_format = params.get("response_format") or {}
    if response_format.get("type") == "json_object":
        return _Answer(json.dumps({"answer": answer_for(messages)}))
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema") or {"type": "object"}
        return _Answer(json.dumps(example_for(schema, said)))
    text = answer_for(messages)
    for stop in params.get("stop") or []:
        text = text.split(stop, 1)[0]
    return _Answer(text)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


class LocalModel(CustomLLM):
    """Deterministic echo model; ``delay_s`` spaces streamed pieces so streaming is visible.

    It speaks the protocol beyond text: tools (see ``_tool_to_call`` for the trigger),
    ``response_format`` (JSON; for a schema, an object of its required properties), ``n``, ``stop``.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def _usage(self, messages: list[dict[str, Any]], answers: list[_Answer], params: dict[str, Any]) -> Usage:
        tools = params.get("tools")
        # Images count at LiteLLM's default: the local model never fetches a URL.
        prompt = litellm.token_counter(
            model=_TOKENIZER_MODEL, messages=messages, tools=tools, use_default_image_token_count=True
        )
        completion = sum(
            litellm.token_counter(model=_TOKENIZER_MODEL, text=_said(a), count_response_tokens=True) for a in answers
        )
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        model_response: ModelResponse = kwargs["model_response"]
        params = kwargs.get("optional_params") or {}
        answers = [_answer(messages, params, i) for i in range(int(params.get("n") or 1))]
        model_response.choices = [
            Choices(
                index=i,
                finish_reason=a.finish_reason,
                message=Message(role="assistant", content=a.text, tool_calls=[a.tool_call] if a.tool_call else None),
            )
            for i, a in enumerate(answers)
        ]
        model_response.model = model
        model_response.usage = self._usage(messages, answers, params)  # type: ignore[attr-defined]
        return model_response

    def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        params = kwargs.get("optional_params") or {}
        n = int(params.get("n") or 1)
        answers = [_answer(messages, params, i) for i in range(n)]
        usage = self._usage(messages, answers, params)
        if n == 1:
            yield from self._single(answers[0], usage)
            return
        # Several choices: OpenAI-shaped chunks carry each choice's index (LiteLLM counts the usage).
        pieces = [self._deltas(a) for a in answers]
        for step in range(max(len(p) for p in pieces)):
            if self.delay_s and step:
                time.sleep(self.delay_s)
            for index, deltas in enumerate(pieces):
                if step < len(deltas):
                    yield ModelResponseStream(choices=[StreamingChoices(index=index, delta=deltas[step])])
        yield ModelResponseStream(
            choices=[StreamingChoices(index=0, delta=Delta(content=""), finish_reason=answers[0].finish_reason)]
        )

    def _deltas(self, answer: _Answer) -> list[Delta]:
        if answer.tool_call is not None:
            return [Delta(tool_calls=[{**answer.tool_call, "index": 0}])]
        return [Delta(content=piece) for piece in _pieces(answer.text or "")]

    def _single(self, answer: _Answer, usage: Usage) -> Iterator[GenericStreamingChunk]:
        tool_use = {**answer.tool_call, "index": 0} if answer.tool_call else None
        pieces = [""] if tool_use else _pieces(answer.text or "")
        for index, piece in enumerate(pieces):
            if self.delay_s and index:
                time.sleep(self.delay_s)
            last = index == len(pieces) - 1
            yield {
                "text": piece,
                "is_finished": last,
                "finish_reason": answer.finish_reason if last else "",
                "index": 0,
                "tool_use": tool_use if last else None,  # type: ignore[typeddict-item]
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                }
                if last
                else None,
            }


def _said(answer: _Answer) -> str:
    if answer.tool_call is not None:
        return str(answer.tool_call["function"]["name"]) + str(answer.tool_call["function"]["arguments"])
    return answer.text or ""


def register_local_models(models: tuple[str, ...], delay_s: float) -> None:
    """Register the provider and price its models (call once per instance)."""
    local = [m for m in models if m.startswith(f"{PROVIDER}/")]
    if not local:
        return
    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER],
        {"provider": PROVIDER, "custom_handler": LocalModel(delay_s)},
    ]
    litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]  # LiteLLM leaves it unannotated
    litellm.register_model(
        {
            model: {
                "input_cost_per_token": _INPUT_COST_PER_TOKEN,
                "output_cost_per_token": _OUTPUT_COST_PER_TOKEN,
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "supports_function_calling": True,
                "supports_tool_choice": True,
                "supports_response_schema": True,
                "supports_vision": True,
                "cache_read_input_token_cost": 0.0,
                "cache_creation_input_token_cost": 0.0,
            }
            for model in local
        }
    )
