"""The real servers the tests and the bench drive: functions-framework, the Auth and Firestore emulators,
each in a process group of its own, and the plumbing to start, await and stop them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
FIREBASE_BIN = ROOT / "node_modules" / ".bin" / "firebase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PASSWORD = "correct horse 1"


def sign_up(auth_host: str, email: str, password: str = PASSWORD) -> tuple[str, str]:
    """A new user in the Auth emulator at ``auth_host``: ``(uid, ID token)``."""
    response = httpx.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key",
        json={"email": email, "password": password, "returnSecureToken": True},
        timeout=10,
    )
    response.raise_for_status()
    body = response.json()
    return body["localId"], body["idToken"]


def wait_until(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``check`` until it is true (servers report readiness only by answering)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def source_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a process serving ``functions/main.py`` from the tree: ``shared`` importable.

    Deployed, ``shared/`` sits next to main.py (scripts/stage.py copies it); in the tree it is the
    project root's, and the tree has no symlinks."""
    paths = [env.get("PYTHONPATH", ""), str(ROOT)]
    return {**env, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop ``proc``'s process group (started with ``start_new_session``): SIGTERM, SIGKILL after ``timeout``.

    SIGCONT first, so a group a test froze with SIGSTOP still gets the SIGTERM."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class FunctionServer:
    """``functions-framework --source functions/main.py --target NAME`` in its own process group."""

    def __init__(self, env: dict[str, str], target: str = "chat") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = target
        self.env = env
        self._log = tempfile.NamedTemporaryFile(prefix=f"ff-{target}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self, timeout: float = 60, wait: bool = True) -> FunctionServer:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "functions-framework"),
                "--source",
                "functions/main.py",
                "--target",
                self.target,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=source_env(self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: httpx.get(f"{self.url}/ready-probe", timeout=1).status_code > 0,
            timeout,
            f"functions-framework ({self.target})",
            self.proc,
        )

    def pids(self) -> list[int]:
        """The master and its workers (gunicorn forks), all in the server's process group."""
        out = subprocess.run(["pgrep", "-g", str(self._started().pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def signal(self, sig: int) -> None:
        os.killpg(self._started().pid, sig)

    def _started(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError(f"functions-framework ({self.target}) was never started")
        return self.proc

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)


class AuthEmulator:
    """The Firebase Auth emulator (firebase-tools from the project's node_modules), on a free port."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="auth-emu-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AuthEmulator:
        config = {
            "emulators": {
                "auth": {"host": "127.0.0.1", "port": self.port},
                "ui": {"enabled": False},
                "hub": {"host": "127.0.0.1", "port": free_port()},
                "logging": {"host": "127.0.0.1", "port": free_port()},
            }
        }
        (self._dir / "firebase.json").write_text(json.dumps(config))
        log = (self._dir / "emulator.log").open("wb")
        self.proc = subprocess.Popen(
            [str(FIREBASE_BIN), "emulators:start", "--only", "auth", "--project", self.project_id],
            cwd=self._dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"},
        )
        wait_until(
            lambda: httpx.get(f"http://{self.host}/", timeout=1).status_code == 200, 90, "Auth emulator", self.proc
        )
        return self

    def sign_up(self, email: str, password: str = PASSWORD) -> tuple[str, str]:
        """A new user: ``(uid, ID token)``."""
        return sign_up(self.host, email, password)

    def sign_in(self, email: str, password: str = PASSWORD) -> str:
        """A fresh ID token (it carries the user's current custom claims)."""
        response = httpx.post(
            f"http://{self.host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=fake-api-key",
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["idToken"]
        return token

    def admin(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The emulator's admin REST API (``Bearer owner``), e.g. to disable a user."""
        response = httpx.request(
            method,
            f"http://{self.host}/identitytoolkit.googleapis.com/v1/projects/{self.project_id}/{path}",
            json=body,
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
        shutil.rmtree(self._dir, ignore_errors=True)


class FirestoreEmulator:
    """gcloud's Firestore emulator (runs offline on Java 17)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FirestoreEmulator:
        self._log = tempfile.NamedTemporaryFile(prefix="firestore-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["gcloud", "emulators", "firestore", "start", f"--host-port={self.host}", "--quiet"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: httpx.get(f"http://{self.host}/", timeout=1).status_code == 200,
            120,
            "Firestore emulator",
            self.proc,
        )
        return self

    def load_rules(self, project_id: str, rules: Path) -> None:
        """Enforce ``rules`` for ``project_id``: the emulator applies them to every client request."""
        body = {"rules": {"files": [{"name": rules.name, "content": rules.read_text()}]}}
        response = httpx.put(
            f"http://{self.host}/emulator/v1/projects/{project_id}:securityRules", json=body, timeout=30
        )
        response.raise_for_status()

    def documents(self, project_id: str, path: str) -> list[dict[str, Any]]:
        """The documents of a collection, read as an admin (rules do not apply)."""
        response = httpx.get(
            f"http://{self.host}/v1/projects/{project_id}/databases/(default)/documents/{path}",
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        )
        response.raise_for_status()
        documents: list[dict[str, Any]] = response.json().get("documents", [])
        return documents

    def clear(self, project_id: str) -> None:
        httpx.delete(f"http://{self.host}/emulator/v1/projects/{project_id}/databases/(default)/documents", timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
