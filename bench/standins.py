"""The stand-ins in a process of their own, so the benchmark's client (and its bare LiteLLM
baseline) never shares a GIL with them: the OpenAI-wire LLM, Lago, Secret Manager and Google's
ID-token certificates.

Prints one JSON line when listening (``llm``, ``lago``, ``lago_key``, ``secret_manager``,
``certs``), then answers commands read from stdin, one per line, each with one JSON line:

- ``count PAYER``: ``{"events": n, "distinct": n, "duplicates": n}``;
- ``arrivals PAYER SINCE``: ``{"arrivals": [...]}``, the ``time.monotonic()`` at which each of
  the payer's events arrived after ``SINCE`` (the clock is the machine's, the same in every
  process, so the client compares it with its own response times);
- ``secret PROJECT NAME VALUE``: adds a version of a secret (``{}``);
- ``token PROJECT UID``: ``{"token": ...}``, an RS256 ID token signed as Firebase Auth would.

End of input stops it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from standins.google_certs import FakeGoogleCerts
from standins.lago import FakeLago
from standins.openai_llm import FakeOpenAI
from standins.secret_manager import FakeSecretManager


def main() -> None:
    llm = FakeOpenAI().start()
    lago = FakeLago().start()
    secrets = FakeSecretManager().start()
    certs = FakeGoogleCerts().start()
    ports = {
        "llm": llm.base_url,
        "lago": lago.url,
        "lago_key": lago.api_key,
        "secret_manager": secrets.host,
        "certs": certs.url,
    }
    print(json.dumps(ports), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        answer: dict[str, Any] = {}
        if command == "count":
            events = lago.events(args[0])
            ids = {e["transaction_id"] for e in events}
            answer = {"events": len(events), "distinct": len(ids), "duplicates": lago.duplicates}
        elif command == "arrivals":
            since = float(args[1])
            answer = {"arrivals": [r.arrived_at for r in lago.arrivals(args[0]) if r.arrived_at >= since]}
        elif command == "secret":
            secrets.add(args[0], args[1], args[2])
        elif command == "token":
            answer = {"token": certs.mint(args[0], args[1])}
        print(json.dumps(answer), flush=True)
    for standin in (lago, llm, secrets, certs):
        standin.stop()


if __name__ == "__main__":
    main()
