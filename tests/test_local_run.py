"""``scripts/run`` checks its ports before it sets up or starts anything."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from standins.processes import ROOT


@pytest.mark.parametrize("args", [[], ["--check-ports"]], ids=["run", "check-ports"])
def test_run_exits_naming_the_taken_port_before_it_sets_up_or_starts_anything(tmp_path: Path, args: list[str]) -> None:
    # A copy of the run with no scripts/setup beside it: if the check let it through, the run would
    # fail on the missing set-up (127), not on the port (1).
    (tmp_path / "scripts").mkdir()
    for name in ("scripts/run", "scripts/local_ports.py", "firebase.json"):
        shutil.copy2(ROOT / name, tmp_path / name)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            [str(tmp_path / "scripts" / "run"), *args],
            env={**os.environ, "LOCAL_LAGO_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result
    assert f"127.0.0.1:{port}, for the local Lago stand-in (LOCAL_LAGO_PORT): in use by pid {os.getpid()}" in (
        result.stderr
    )
    assert result.stdout == "", "nothing is set up or started while a port is taken"
    assert not (tmp_path / ".firestore-emulator.log").exists()
