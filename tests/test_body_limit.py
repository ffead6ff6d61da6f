"""The body limit holds at the WSGI layer, and an anonymous sender's body is never waited for.

Against the session's chat server (gunicorn under functions-framework, as Cloud Functions runs it)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from standins.processes import FunctionServer
from tests.conftest import User

CHAT = "/v1/chat/completions"
CHUNK = b"x" * 65536


def worker_rss_kb(server: FunctionServer) -> int:
    """The largest resident set among the server's processes (the worker holds the body)."""
    sizes = []
    for pid in server.pids():
        status = Path(f"/proc/{pid}/status").read_text()
        sizes += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return max(sizes)


def read_answer(sock: socket.socket) -> str:
    """The whole HTTP answer: its head and the body its Content-Length announces (TCP may split them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def test_chunked_body_past_the_limit_is_413_and_never_held_in_memory(chat_server: FunctionServer, user: User) -> None:
    def body(megabytes: int) -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(megabytes * 16):
            yield CHUNK

    warm = httpx.post(chat_server.url + CHAT, content=body(2), headers=user.headers, timeout=60)  # no Content-Length
    assert warm.status_code == 413
    before = worker_rss_kb(chat_server)
    response = httpx.post(chat_server.url + CHAT, content=body(100), headers=user.headers, timeout=60)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    grown_mb = (worker_rss_kb(chat_server) - before) / 1024
    assert grown_mb < 20, f"the worker grew by {grown_mb:.0f} MB for a 100 MB body (was: all of it)"


def test_anonymous_sender_that_never_finishes_its_body_gets_401_at_once(chat_server: FunctionServer) -> None:
    host, port = chat_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        head = (
            f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        started = time.monotonic()
        sock.sendall(head.encode() + b'{"messages": [')  # ... and nothing more
        answer = sock.recv(4096).decode(errors="replace")
        elapsed = time.monotonic() - started
        rest = b"x"
        while rest:  # the server ends the connection rather than wait for the body's rest
            rest = sock.recv(4096)
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert elapsed < 5, f"{elapsed:.1f} s: the worker waited for the body (was: until the client gave up)"


def test_declared_oversized_body_is_413_without_being_read(chat_server: FunctionServer, user: User) -> None:
    host, port = chat_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        head = (
            f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 400000000\r\n\r\n"
        )
        sock.sendall(head.encode() + CHUNK)
        answer = read_answer(sock)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "request_too_large" in answer
