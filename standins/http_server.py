"""A threaded HTTP server on 127.0.0.1 with a route table, run on a thread of the test process."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Handler = Callable[["Request"], None]


class Request:
    """One request, with helpers to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        self.handler = handler
        self.method = handler.command
        self.path, _, self.query = handler.path.partition("?")
        self.params = params  # the route pattern's named groups
        self.headers = handler.headers
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", "application/json")
        self.handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.handler.send_header(key, value)
        self.handler.end_headers()
        self.handler.wfile.write(data)

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Cache-Control", "no-cache")
        self.handler.send_header("Connection", "close")
        self.handler.end_headers()
        self.handler.close_connection = True

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection with no (further) answer, as a crashed or reset peer would."""
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.handler.connection.close()


class StandInServer:
    """Routes are ``(method, regex, handler)``; unknown routes get a JSON 404 and are recorded."""

    def __init__(self, routes: list[tuple[str, str, Handler]], port: int = 0) -> None:
        self._routes = [(method, re.compile(pattern + r"$"), fn) for method, pattern, fn in routes]
        self.unknown: list[str] = []
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> StandInServer:
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, the body
            # waits for the client's delayed ACK (40 ms on Linux), which real servers don't do.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with outer._connections_lock:
                    outer._connections.add(self.connection)

            def finish(self) -> None:
                with outer._connections_lock:
                    outer._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def _dispatch(self) -> None:
                path = self.path.partition("?")[0]
                for method, pattern, fn in outer._routes:
                    match = pattern.match(path)
                    if match and method == self.command:
                        try:
                            fn(Request(self, match.groupdict()))
                        except (BrokenPipeError, ConnectionResetError, OSError):
                            self.close_connection = True
                        return
                outer.unknown.append(f"{self.command} {self.path}")
                Request(self, {}).send_json(
                    404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"no route {path}"}}
                )

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: new connections are refused until ``start()`` binds the same port again, and
        open keep-alive connections are cut (a real outage does not spare pooled connections)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class StandIn:
    """A stand-in service: its ``server`` (set in ``__init__``) and the usual start/stop/url."""

    server: StandInServer

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url
