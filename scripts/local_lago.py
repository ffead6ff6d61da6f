"""The local run's Lago: the stand-in of Lago's API (``standins/lago.py``, which the tests use too),
so billing and usage work offline.

Usage: python scripts/local_lago.py PORT API_KEY
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from standins.lago import FakeLago


def main() -> None:
    port, api_key = int(sys.argv[1]), sys.argv[2]
    lago = FakeLago(api_key=api_key, port=port).start()
    print(f"local Lago stand-in on {lago.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        while not stop.wait(0.5):  # a timed wait, so the signal handler gets to run
            pass
    lago.stop()


if __name__ == "__main__":
    main()
