"""The Firebase emulator suite as ``scripts/run`` starts it (Hosting, Functions, Auth), on free ports.

The config is the repo's ``firebase.json`` (its Hosting rewrites and functions codebase) with the
emulators moved to free ports. It is written next to ``firebase.json``: firebase-tools resolves
``public`` and ``functions`` against the config file's folder, so they are this repo's.

The Functions emulator runs firebase.json's ``functions.source``, the upload as
``scripts/stage.py`` stages it (``build/functions``, restaged here so it is the tree's code, with
``venv`` linked to the project's virtualenv), and passes its own environment
to the Python workers, so the functions' settings are the environment given here. It leaves
those workers running when it exits: the suite runs in its own process group, killed at the end.

One suite runs at a time on the machine (a file lock, held from staging to the end): the test
workers of ``pytest -n`` would otherwise restage ``build/functions`` under a running one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from standins.processes import FIREBASE_BIN, PASSWORD, ROOT, free_port, sign_up, wait_until

REGION = "us-central1"


def local_settings(lago_url: str, lago_key: str, **changes: str) -> dict[str, str]:
    """The functions' settings of ``scripts/run`` (embedded model, budgets, usage), billing to ``lago_url``."""
    return {
        "CHAT_MODELS": "local/demo,demo=local/demo",  # as scripts/run lists them
        "LOCAL_MODEL_DELAY_MS": "80",  # streaming visible: about 12 pieces a second
        "LAGO_API_BASE": lago_url,
        "LAGO_API_KEY": lago_key,
        "LAGO_API_EVENT_CODE": "llm_tokens",
        "LAGO_API_CHARGE_BY": "user_id",
        "LAGO_PLAN_CODE": "local_plan",
        "CHAT_BUDGET_CENTS": "",
        "CHAT_USAGE_CACHE_S": "0",
        "BILLING_OUTBOX": "false",  # the Lago stand-in is up; no Firestore emulator needed
        "PYTHONUNBUFFERED": "1",
        **changes,
    }


def stage_functions() -> Path:
    """Stage the functions as ``scripts/setup`` does: the emulator runs firebase.json's source."""
    source = ROOT / json.loads((ROOT / "firebase.json").read_text())["functions"][0]["source"]
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stage.py"), str(source), "--venv", str(ROOT / ".venv")], check=True
    )
    return source


class EmulatorSuite:
    """``firebase emulators:start`` (or ``emulators:exec``) with ``--only auth,functions,hosting``."""

    def __init__(self, env: dict[str, str], only: str = "auth,functions,hosting") -> None:
        self.project_id = f"demo-web-{uuid.uuid4().hex[:8]}"
        self.only = only
        self.hosting_port, self.functions_port, self.auth_port = free_port(), free_port(), free_port()
        self.hosting_url = f"http://127.0.0.1:{self.hosting_port}"
        self.functions_url = f"http://127.0.0.1:{self.functions_port}/{self.project_id}/{REGION}"
        self.auth_host = f"127.0.0.1:{self.auth_port}"
        self.config_path = ROOT / f".firebase-test-{uuid.uuid4().hex[:12]}.json"
        agent = f'--require "{ROOT / "scripts" / "emulator-http-agent.cjs"}"'  # as scripts/run does
        node_options = " ".join(filter(None, [os.environ.get("NODE_OPTIONS"), agent]))
        self.env = {**os.environ, **env, "NODE_OPTIONS": node_options, "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"}
        self._log = tempfile.NamedTemporaryFile(prefix="emulators-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None  # the machine's one-suite lock, while held

    def config(self) -> dict[str, Any]:
        config = json.loads((ROOT / "firebase.json").read_text())
        config["emulators"] = {
            "singleProjectMode": True,
            "ui": {"enabled": False},
            "hub": {"host": "127.0.0.1", "port": free_port()},
            "logging": {"host": "127.0.0.1", "port": free_port()},
            "auth": {"host": "127.0.0.1", "port": self.auth_port},
            "functions": {"host": "127.0.0.1", "port": self.functions_port},
            "hosting": {"host": "127.0.0.1", "port": self.hosting_port},
        }
        return config

    def _popen(self, *args: str) -> subprocess.Popen[bytes]:
        (ROOT / "build").mkdir(exist_ok=True)
        self._lock = os.open(ROOT / "build" / ".emulator-suite.lock", os.O_CREAT | os.O_RDWR)
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # waits for another worker's suite to stop
        try:
            stage_functions()
            self.config_path.write_text(json.dumps(self.config(), indent=2))
            command = [str(FIREBASE_BIN), "--config", self.config_path.name, *args, "--project", self.project_id]
            return subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self.stop()
            raise

    def start(self, timeout: float = 240) -> EmulatorSuite:
        """Start the suite and wait until the page is served and both functions answer (warm)."""
        self.proc = self._popen("emulators:start", "--only", self.only)
        deadline = time.monotonic() + timeout
        try:
            wait_until(self._hosting_serves_the_page, timeout, "Hosting emulator", self.proc)
            # Each function's first request is its cold start: make them here, not in a test.
            for url in (f"{self.hosting_url}/api/v1/models", f"{self.hosting_url}/api/usage"):
                wait_until(
                    lambda url=url: httpx.get(url, timeout=60).status_code == 401,
                    max(deadline - time.monotonic(), 1),
                    f"function behind {url}",
                    self.proc,
                )
        except Exception:
            self.stop()
            raise
        return self

    def _hosting_serves_the_page(self) -> bool:
        return httpx.get(self.hosting_url + "/", timeout=2).status_code == 200

    def exec(self, command: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
        """``firebase emulators:exec COMMAND``: the suite starts, runs the command, and stops."""
        self.proc = self._popen("emulators:exec", "--only", self.only, command)
        try:
            returncode = self.proc.wait(timeout)
        finally:
            self.stop()
        return subprocess.CompletedProcess(self.proc.args, returncode, self.logs().encode(), b"")

    def sign_up(self, email: str, password: str = PASSWORD) -> tuple[str, str]:
        """A new user in the suite's Auth emulator: ``(uid, ID token)``."""
        return sign_up(self.auth_host, email, password)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            # SIGINT is the emulators' clean shutdown; the Python workers ignore it, so the whole
            # group is killed once the CLI is gone (or has had its time).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.config_path.unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None
