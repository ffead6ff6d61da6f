"""Benchmarks of the chat function against local stand-ins: ``.venv/bin/python -m bench.run``."""
