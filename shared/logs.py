"""Structured logs: one JSON object per line in Cloud Logging's format.

``severity`` and ``message`` are Cloud Logging's keys; other fields ride along as
``jsonPayload``. The request's trace (from ``X-Cloud-Trace-Context``) is attached to every line
logged while the request runs. Callers pass identifiers and counts, never tokens, prompts or
secret values.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import sys
import threading
from typing import Any

_TRACE_KEY = "logging.googleapis.com/trace"
_request_labels: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("request_labels", default=None)
_configure_lock = threading.Lock()
_once_lock = threading.Lock()
_once_keys: set[str] = set()

logger = logging.getLogger("chat")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"severity": record.levelname, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        labels = _request_labels.get()
        if labels:
            entry.update(labels)
        if record.exc_info and record.exc_info[0] is not None:
            # The class only: a traceback's locals and messages may hold request data.
            entry.setdefault("error_class", record.exc_info[0].__name__)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure() -> None:
    """Send our logger's records to stdout as JSON lines (idempotent)."""
    with _configure_lock:
        if getattr(logger, "_configured", False):
            return
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger._configured = True  # type: ignore[attr-defined]


def log(severity: str, message: str, **fields: Any) -> None:
    """Log one structured line: ``log("WARNING", "lago_logging_disabled", missing=[...])``."""
    logger.log(logging.getLevelName(severity), message, extra={"fields": fields})


def log_once(key: str, severity: str, message: str, **fields: Any) -> None:
    """Log a line at most once per instance (e.g. a model missing from the cost map)."""
    with _once_lock:
        if key in _once_keys:
            return
        _once_keys.add(key)
    log(severity, message, **fields)


def bind_request(trace_header: str | None, project_id: str) -> contextvars.Token[dict[str, str] | None]:
    """Attach the request's trace to the lines logged until ``unbind_request``."""
    labels: dict[str, str] = {}
    if trace_header and project_id:
        trace_id = trace_header.split("/", 1)[0]
        if trace_id:
            labels[_TRACE_KEY] = f"projects/{project_id}/traces/{trace_id}"
    return _request_labels.set(labels)


def unbind_request(token: contextvars.Token[dict[str, str] | None]) -> None:
    _request_labels.reset(token)


def uid_hash(uid: str) -> str:
    """A short stable digest of a uid, for lines that must not name the user."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]
