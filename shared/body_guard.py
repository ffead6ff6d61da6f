"""The request body at the WSGI layer: never read past the limit, never waited for in vain.

functions-framework reads the whole body after every non-streamed response (its
``read_request`` hook, so clients are not reset mid-send): a 400 MB chunked body grew a worker
by 360 MB after its 413, and an anonymous sender that trickles its body held a worker thread.
``BodyGuard`` wraps the Flask app's WSGI callable:

- a body whose declared ``Content-Length`` is past the limit is never read (the handler answers
  413 from the header; the connection is then closed);
- the input stream ends after ``limit + 1`` bytes (enough to see the excess), whatever reads it;
- when the handler answers without the body (401, 413, ...) it calls ``skip_body``: what is left
  is drained for at most ``DRAIN_S`` (a client that sent it already gets its answer, not a
  reset); past that the socket's read side is shut, so neither functions-framework nor
  gunicorn (which drains a kept-alive connection's unread body before its next request) waits
  for the rest: the answer goes out and the connection ends.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

_KEY = "chat.body_guard"
DRAIN_S = 1.0
_CHUNK = 64 * 1024


class _BoundedInput:
    """``wsgi.input`` that ends at ``min(declared length, cap)`` bytes."""

    def __init__(self, stream: Any, left: int, sock: Any) -> None:
        self._stream = stream
        self._left = left
        self._sock = sock

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        try:
            data: bytes = self._stream.read(want)
        except OSError:  # a drain's socket timeout, or the client went away
            self._left = 0
            return b""
        self._left = self._left - len(data) if data else 0
        return data

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)

    def skip(self) -> None:
        """Drain what is left for at most ``DRAIN_S``, then give up on it and close the connection."""
        if self._left <= 0:
            return
        deadline = time.monotonic() + DRAIN_S
        previous = self._sock.gettimeout() if self._sock is not None else None
        try:
            while self._left > 0 and (remaining := deadline - time.monotonic()) > 0:
                if self._sock is not None:
                    self._sock.settimeout(remaining)
                if not self.read(_CHUNK):
                    break
        finally:
            if self._sock is not None:
                self._sock.settimeout(previous)
        if self._left > 0 or time.monotonic() >= deadline:
            self.abandon()

    def abandon(self) -> None:
        """Read no more of this body, here or in the server: shut the socket's read side."""
        self._left = 0
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already gone
                self._sock.shutdown(socket.SHUT_RD)


def skip_body(environ: dict[str, Any]) -> None:
    """The handler answers without reading the body (or the rest of it)."""
    guard = environ.get(_KEY)
    if isinstance(guard, _BoundedInput):
        guard.skip()


class BodyGuard:
    """WSGI middleware bounding every request body to ``limit`` bytes."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        declared = _content_length(environ)
        too_large = declared is not None and declared > self.limit
        cap = 0 if too_large else self.limit + 1 if declared is None else declared
        guard = _BoundedInput(environ["wsgi.input"], cap, environ.get("gunicorn.socket"))
        if too_large:
            guard.abandon()  # the handler answers 413 from the header alone
        environ["wsgi.input"] = guard
        environ["wsgi.input_terminated"] = True  # the stream ends by itself: werkzeug reads it as is
        environ[_KEY] = guard
        return self.app(environ, start_response)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.isdigit() else None
