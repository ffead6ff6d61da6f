"""A Secret Manager stand-in speaking the v1 REST API that the real client's REST transport calls.

- ``GET /v1/projects/P/secrets/S/versions/V:access`` answers
  ``{"name": "projects/NUMBER/secrets/S/versions/N", "payload": {"data": b64, "dataCrc32c": "<int64>"}}``
  (the real API names the project by number); ``V`` is a version number or ``latest``, the
  highest enabled version.
- Errors in Google's shape ``{"error": {"code", "message", "status"}}``: 404 ``NOT_FOUND`` for an
  unknown secret or version, 400 ``FAILED_PRECONDITION`` for a disabled version.
- Faults, per secret: ``fault(project, secret, "denied")`` answers 403 ``PERMISSION_DENIED``;
  ``"corrupt"`` sends a ``dataCrc32c`` that does not match the data; ``"slow"`` waits ``seconds``
  (or until ``stop()``) before answering normally; ``"held"`` waits until ``release_held()``
  (at most ``seconds``), so a test can act while a read is under way.
- ``accessed`` records every ``(project, secret, version)`` asked for, so tests can prove that a
  variable already in the environment cost no call and that a pinned version was the one read.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from dataclasses import dataclass

import google_crc32c

from .http_server import Request, StandIn, StandInServer

PROJECT_NUMBER = "123456789012"
_ID = r"[^/:?]+"


@dataclass
class _Version:
    data: bytes
    enabled: bool = True


class FakeSecretManager(StandIn):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[tuple[str, str], list[_Version]] = {}
        self._faults: dict[tuple[str, str], tuple[str, float]] = {}
        self._released = threading.Event()
        self._held = threading.Event()
        self.accessed: list[tuple[str, str, str]] = []
        self.server = StandInServer(
            [
                (
                    "GET",
                    rf"/v1/projects/(?P<project>{_ID})/secrets/(?P<secret>{_ID})/versions/(?P<version>{_ID}):access",
                    self._access,
                )
            ]
        )

    def stop(self) -> None:
        self._released.set()
        super().stop()

    @property
    def host(self) -> str:
        """What ``SECRET_MANAGER_EMULATOR_HOST`` is set to."""
        return f"127.0.0.1:{self.server.port}"

    def add(self, project: str, secret: str, *values: str | bytes) -> None:
        """Add versions 1, 2, ... (after any already there) with these values."""
        with self._lock:
            versions = self._secrets.setdefault((project, secret), [])
            versions.extend(_Version(v.encode() if isinstance(v, str) else v) for v in values)

    def disable(self, project: str, secret: str, version: int) -> None:
        with self._lock:
            self._secrets[(project, secret)][version - 1].enabled = False

    def enable(self, project: str, secret: str, version: int) -> None:
        with self._lock:
            self._secrets[(project, secret)][version - 1].enabled = True

    def release_held(self) -> None:
        """Let the accesses waiting on a ``held`` fault answer (and any later ones at once)."""
        self._held.set()

    def fault(self, project: str, secret: str, kind: str, seconds: float = 0.0) -> None:
        """``denied``, ``corrupt``, ``slow`` or ``held`` (``seconds``) for every access to this secret."""
        assert kind in ("denied", "corrupt", "slow", "held"), kind
        with self._lock:
            self._faults[(project, secret)] = (kind, seconds)

    def requests(self, project: str) -> Counter[str]:
        """How many accesses each secret of ``project`` had."""
        with self._lock:
            return Counter(secret for p, secret, _ in self.accessed if p == project)

    def _access(self, request: Request) -> None:
        project, secret, version = request.params["project"], request.params["secret"], request.params["version"]
        with self._lock:
            self.accessed.append((project, secret, version))
            kind, seconds = self._faults.get((project, secret), ("", 0.0))
            versions = list(self._secrets.get((project, secret), []))
        if kind == "slow":
            self._released.wait(seconds)
        if kind == "held":
            self._held.wait(seconds)
        if kind == "denied":
            message = (
                f"Permission 'secretmanager.versions.access' denied for resource "
                f"'projects/{project}/secrets/{secret}/versions/{version}' (or it may not exist)."
            )
            return _error(request, 403, "PERMISSION_DENIED", message)
        number = _resolve(versions, version)
        resource = f"projects/{PROJECT_NUMBER}/secrets/{secret}"
        if number is None:
            what = (
                f"Secret [{resource}] not found or has no versions."
                if not versions
                else f"Secret Version [{resource}/versions/{version}] not found."
            )
            return _error(request, 404, "NOT_FOUND", what)
        chosen = versions[number - 1]
        if not chosen.enabled:
            return _error(
                request,
                400,
                "FAILED_PRECONDITION",
                f"Secret Version [{resource}/versions/{number}] is in DISABLED state.",
            )
        checksum = google_crc32c.value(chosen.data) ^ (1 if kind == "corrupt" else 0)
        payload = {"data": base64.b64encode(chosen.data).decode(), "dataCrc32c": str(checksum)}
        request.send_json(200, {"name": f"{resource}/versions/{number}", "payload": payload})


def _resolve(versions: list[_Version], version: str) -> int | None:
    """The version number asked for: ``latest`` is the highest enabled one."""
    if version == "latest":
        enabled = [i + 1 for i, v in enumerate(versions) if v.enabled]
        return enabled[-1] if enabled else None
    if version.isdigit() and 1 <= int(version) <= len(versions):
        return int(version)
    return None


def _error(request: Request, code: int, status: str, message: str) -> None:
    request.send_json(code, {"error": {"code": code, "message": message, "status": status}})
