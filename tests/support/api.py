"""The one set of helpers the tests use to call the chat API: the paths, the bodies they send
(``messages``, ``ask``, ``stream_body``), who sends them (a ``User`` fixture, or ``Bearer`` for a
raw ID token and an App Check token), and the call itself (``chat``). Like the ``AuthActions`` of
Flask's tutorial tests: modules speak these verbs instead of writing their own post helper."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

CHAT = "/v1/chat/completions"
DEFAULT_MODEL = "openai/gpt-4o-mini"  # priced in LiteLLM's cost map; served by the OpenAI stand-in
APP_CHECK_HEADER = "X-Firebase-AppCheck"
# A 1x1 PNG as a data URI: an image part any vision model accepts.
PIXEL = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    ).decode()
)

# Headers a test adds: a mapping, or pairs when a name must repeat (two Authorization headers).
Headers = Mapping[str, str] | Sequence[tuple[str, str]]


class Server(Protocol):
    url: str


class Caller(Protocol):
    @property
    def headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Bearer:
    """A caller by its raw ID token (signed by a stand-in, or garbled on purpose), with the App
    Check token the page would send beside it, if any."""

    token: str
    app_check: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.app_check is not None:
            headers[APP_CHECK_HEADER] = self.app_check
        return headers


def messages(text: str = "hello there") -> list[dict[str, str]]:
    """One user message."""
    return [{"role": "user", "content": text}]


def ask(text: str = "hello there", *, model: str = DEFAULT_MODEL, **extra: Any) -> dict[str, Any]:
    """A chat completions body: one user message to ``model``, plus any other fields."""
    return {"model": model, "messages": messages(text), **extra}


def stream_body(text: str = "hello there", include_usage: bool = True, **extra: Any) -> dict[str, Any]:
    """A streamed chat completions body, with the usage chunk unless ``include_usage`` is False."""
    return ask(text, stream=True, stream_options={"include_usage": include_usage}, **extra)


def chat(
    server: Server,
    user: Caller | None,
    body: object,
    *,
    headers: Headers | None = None,
    path: str = CHAT,
    timeout: float = 30,
    **httpx_args: Any,
) -> httpx.Response:
    """POST ``body`` to ``server``'s chat path as ``user`` (their ID token the bearer; None sends
    no Authorization), with ``headers`` added (they win over the user's).

    A body of bytes or str is sent as it is, for malformed input; anything else as JSON. Other
    keyword arguments go to httpx (``params``, say)."""
    sent: list[tuple[str, str]] = list(user.headers.items()) if user is not None else []
    added = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    if isinstance(headers, Mapping):
        sent = [(name, value) for name, value in sent if name.lower() not in {n.lower() for n, _ in added}]
    sent += added
    if not any(name.lower() == "content-type" for name, _ in sent):
        sent.append(("Content-Type", "application/json"))
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + path, content=content, headers=sent, timeout=timeout, **httpx_args)
