"""Stand-ins for the services that have no emulator, speaking their real wire protocols on 127.0.0.1.

A product of its own, outside ``tests/``: the tests, the local run (``scripts/local_lago.py``) and
the benchmarks (``bench/``) all start them. ``processes`` starts the real servers beside them,
``chromium`` says where Debian's Chromium is and how it is launched.
Never staged into the functions' upload (``scripts/stage.py`` copies ``shared/`` only)."""
