"""LiteLLM Proxy, the gateway most teams would deploy instead, started for the benchmark.

The same litellm version as requirements.txt, in a virtualenv of its own
(``bench/.proxy-venv``, made or updated from ``bench/requirements-proxy.txt`` when that file
changes): the proxy wants other versions of packages the function's environment shares, and
``litellm[proxy]`` cannot be installed from the registry, so the file pins the packages that
make it start. Configured as its documentation says: one model pointed at the bench's LLM
stand-in, LiteLLM's own ``"lago"`` success callback pointed at the Lago stand-in, charging the
request's ``user`` (``LAGO_API_CHARGE_BY=end_user_id``), a master key, no database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from standins.processes import ROOT, free_port, stop_group, wait_until

VENV = ROOT / "bench" / ".proxy-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-proxy.txt"
_STAMP = VENV / "requirements.sha256"


def _pin(path: Path, package: str) -> str:
    match = re.search(rf"^{package}==(\S+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{path.name} does not pin {package}")
    return match.group(1)


def ensure_venv() -> Path:
    """The proxy's virtualenv, installed from the pinned file; returns its ``litellm`` command."""
    runtime, proxy = _pin(ROOT / "requirements.txt", "litellm"), _pin(REQUIREMENTS, "litellm")
    if runtime != proxy:
        raise RuntimeError(f"bench/requirements-proxy.txt pins litellm {proxy}, requirements.txt {runtime}")
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not (_STAMP.exists() and _STAMP.read_text() == digest):
        print("installing LiteLLM Proxy into bench/.proxy-venv ...", file=sys.stderr)
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        _STAMP.write_text(digest)
    return VENV / "bin" / "litellm"


class LiteLLMProxy:
    """``litellm --config`` on a free port, in its own process group."""

    def __init__(self, model: str, llm_url: str, provider_key: str, lago_url: str, lago_key: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.master_key = f"sk-bench-{secrets.token_hex(8)}"
        self._dir = Path(tempfile.mkdtemp(prefix="litellm-proxy-"))
        config = {
            "model_list": [
                {
                    "model_name": model,
                    "litellm_params": {"model": model, "api_base": llm_url, "api_key": provider_key},
                }
            ],
            "litellm_settings": {"success_callback": ["lago"]},
            "general_settings": {"master_key": self.master_key},
        }
        self._config = self._dir / "config.yaml"
        self._config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        keep = ("PATH", "HOME", "LANG", "TMPDIR")
        self._env = {
            **{key: os.environ[key] for key in keep if key in os.environ},
            "LAGO_API_BASE": lago_url,
            "LAGO_API_KEY": lago_key,
            "LAGO_API_EVENT_CODE": "llm_tokens",
            "LAGO_API_CHARGE_BY": "end_user_id",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONUNBUFFERED": "1",
        }
        self._log_path = self._dir / "proxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> LiteLLMProxy:
        litellm = ensure_venv()
        with self._log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(litellm), "--config", str(self._config), "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self._dir,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: httpx.get(f"{self.url}/health/liveliness", timeout=1).status_code == 200,
                timeout,
                "LiteLLM Proxy",
                self.proc,
            )
        except (RuntimeError, TimeoutError):
            raise RuntimeError(f"LiteLLM Proxy did not start: {self.logs()[-3000:]}") from None
        return self

    def logs(self) -> str:
        return self._log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
        shutil.rmtree(self._dir, ignore_errors=True)
