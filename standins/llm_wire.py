"""What the Anthropic and Gemini stand-ins share: directives, token counts, and what they saw.

Behaviour is chosen by directives in the last user message, so concurrent tests share no state:

- ``#words:N``: the answer's length in words (default 8); ``#think:N``: thinking words (default
  24 when the request turns thinking on; Gemini also thinks when only the directive asks).
- ``#cache_read:N``, ``#cache_write:N`` (Anthropic: the 5-minute TTL), ``#cache_write_1h:N``:
  how many of the prompt's tokens were read from / written to the prompt cache; ``#cached:N``
  is Gemini's ``cachedContentTokenCount`` (a part of ``promptTokenCount``).
- ``#cut:N``: a stream ends after N answer words without finishing its chunked body (the
  provider failing mid-stream: the client gets every byte sent, then a broken body);
  ``#error:N`` (Anthropic) sends its ``overloaded_error`` event there instead.
- ``#status:N`` answers that HTTP error.

Token counts are deterministic: one prompt token per whitespace-separated word of the system
prompt and every message, plus 3 per message (``prompt_tokens``); one output token per word
generated (each streamed delta is one word). The cache directives split the prompt, they do not
add to it: a directive larger than the prompt is the stand-in's 400, naming it.

Every call is kept (``calls``): its path, body, whether it streamed, who called, the usage the provider
reported by the end (or by the cut) and whether it completed, so tests can ask what reached
the provider (``max_tokens``, file parts) and what it charged for.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from .http_server import Request

_DIRECTIVE = re.compile(r"#(words|think|cache_read|cache_write_1h|cache_write|cached|cut|error|status):(\d+)")


def directives(text: str) -> dict[str, int]:
    """The directives of a message: ``{"cut": 3, ...}``."""
    return {name: int(value) for name, value in _DIRECTIVE.findall(text)}


def words(text: str) -> int:
    return len(text.split())


def answer_words(count: int) -> list[str]:
    """The answer: ``word word ...``, one token per word (by LiteLLM's token counter too, so its
    estimates of a cut stream's output agree with what the stand-in sent)."""
    return ["word"] * count


def thinking_words(count: int) -> list[str]:
    """The thinking: ``think think ...``, one token per word likewise."""
    return ["think"] * count


@dataclass
class Call:
    """One request that reached a stand-in, and what the provider reported for it."""

    path: str
    body: dict[str, Any]
    stream: bool
    caller: str = ""  # who was let in: "api-key", or the service account a Vertex AI token stood for
    usage: dict[str, Any] = field(default_factory=dict)  # as reported on the wire, last report
    completed: bool = False  # False: an error answer, or a stream cut before its end

    def text(self) -> str:
        """Every word the request carried (to find a test's own calls by a marker)."""
        return repr(self.body)


class Recorder:
    """The calls a stand-in saw, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def record(self, call: Call) -> Call:
        with self._lock:
            self._calls.append(call)
        return call

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_with(self, marker: str) -> list[Call]:
        """The calls whose body carries ``marker`` (a test's own, among concurrent tests')."""
        return [call for call in self.calls if marker in call.text()]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


class ChunkedStream:
    """A streamed answer in HTTP/1.1 chunked encoding, as the providers' frontends send it."""

    def __init__(self, request: Request, content_type: str = "text/event-stream") -> None:
        self._request = request
        handler = request.handler
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

    def write(self, data: bytes) -> None:
        self._request.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end(self) -> None:
        self._request.write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Close the connection in the middle of the body. An orderly close (FIN, not a reset):
        what was sent reaches the client, which then sees the body end before its last chunk."""
        handler = self._request.handler
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_WR)
