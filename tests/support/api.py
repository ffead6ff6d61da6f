"""The one set of helpers the tests use to call the chat API (paths, bodies, a call)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

CHAT = "/v1/chat/completions"
DEFAULT_MODEL = "openai/gpt-4o-mini"  # priced in LiteLLM's cost map; served by the OpenAI stand-in


class Server(Protocol):
    url: str


class Caller(Protocol):
    @property
    def headers(self) -> dict[str, str]: ...


def messages(text: str = "hello there") -> list[dict[str, str]]:
    """One user message."""
    return [{"role": "user", "content": text}]


def ask(text: str = "hello there", *, model: str = DEFAULT_MODEL, **extra: Any) -> dict[str, Any]:
    """A chat completions body: one user message to ``model``, plus any other fields."""
    return {"model": model, "messages": messages(text), **extra}


def stream_body(text: str = "hello there", include_usage: bool = True, **extra: Any) -> dict[str, Any]:
    """A streamed chat completions body, with the usage chunk unless ``include_usage`` is False."""
    return ask(text, stream=True, stream_options={"include_usage": include_usage}, **extra)


def chat(server: Server, user: Caller, body: dict[str, Any], timeout: float = 30) -> httpx.Response:
    """POST ``body`` to the chat function as ``user`` (their ID token as the bearer)."""
    return httpx.post(server.url + CHAT, json=body, headers=user.headers, timeout=timeout)
