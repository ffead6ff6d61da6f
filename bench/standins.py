"""The LLM and Lago stand-ins in a process of their own, so the benchmark's client (and its bare
LiteLLM baseline) never shares a GIL with them.

Prints one JSON line ``{"llm": base_url, "lago": url}`` when listening, then answers commands
read from stdin, one per line: ``count SUBSCRIPTION`` prints
``{"events": n, "distinct": n, "duplicates": n}``; end of input stops it.
"""

from __future__ import annotations

import json
import sys

from tests.standins.lago import FakeLago
from tests.standins.openai_llm import FakeOpenAI


def main() -> None:
    llm = FakeOpenAI().start()
    lago = FakeLago().start()
    print(json.dumps({"llm": llm.base_url, "lago": lago.url, "lago_key": lago.api_key}), flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "count":
            events = lago.events(arg)
            ids = {e["transaction_id"] for e in events}
            print(json.dumps({"events": len(events), "distinct": len(ids), "duplicates": lago.duplicates}), flush=True)
    lago.stop()
    llm.server.stop()


if __name__ == "__main__":
    main()
