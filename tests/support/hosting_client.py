"""Run by ``firebase emulators:exec`` in tests/test_hosting.py: calls the chat function through the
Hosting rewrite with a real Auth emulator token, and writes what it saw to a JSON file.

Usage: python -m tests.support.hosting_client HOSTING_URL OUT_FILE
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import httpx

from tests.support import api

CHAT = "/api" + api.CHAT  # through the Hosting rewrite


def sign_up(auth_host: str) -> str:
    response = httpx.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key",
        json={"email": f"exec-{uuid.uuid4().hex[:10]}@example.com", "password": "secret123", "returnSecureToken": True},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["idToken"]


def stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The stream's data events, each with the time it arrived (seconds since the request)."""
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    with client.stream("POST", url, json=body, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append({"data": line.removeprefix("data: "), "at": time.monotonic() - started})
        return {"status": response.status_code, "content_type": response.headers.get("content-type"), "events": events}


def main() -> None:
    hosting_url, out_file = sys.argv[1], sys.argv[2]
    auth_host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]  # set by emulators:exec
    headers = {"Authorization": f"Bearer {sign_up(auth_host)}"}
    question = {"role": "user", "content": "one two three four five six"}
    results: dict[str, Any] = {"auth_emulator_host": auth_host}
    with httpx.Client(timeout=120) as client:
        unauthenticated = client.post(hosting_url + CHAT, json={"messages": [question]})
        results["unauthenticated"] = {"status": unauthenticated.status_code, "body": unauthenticated.json()}
        reply = client.post(hosting_url + CHAT, json={"messages": [question]}, headers=headers)
        results["json"] = {
            "status": reply.status_code,
            "content_type": reply.headers.get("content-type"),
            "body": reply.json(),
        }
        body = {"messages": [question], "stream": True, "stream_options": {"include_usage": True}}
        results["stream"] = stream(client, hosting_url + CHAT, headers, body)
    with open(out_file, "w") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main()
