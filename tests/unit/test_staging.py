"""The staged upload's entry points, read from main.py (no server, no deploy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from standins.processes import ROOT


def staged(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stage.py"), str(tmp_path / "out")], check=True)
    return tmp_path / "out"


def deploy_sh_list(name: str) -> set[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", (ROOT / "deploy.sh").read_text(), re.MULTILINE)
    assert match, f"deploy.sh has no {name}=(...)"
    return set(match.group(1).split())


def test_functions_yaml_lists_every_entry_point_and_only_public_ones_lack_an_invoker(tmp_path: Path) -> None:
    endpoints = yaml.safe_load((staged(tmp_path) / "functions.yaml").read_text())["endpoints"]
    assert set(endpoints) == {"chat", "usage", "replay_billing"}
    assert endpoints["chat"]["httpsTrigger"] == endpoints["usage"]["httpsTrigger"] == {}
    # firebase-tools makes an HTTPS function without an invoker public: the replay must say private.
    assert endpoints["replay_billing"]["httpsTrigger"] == {"invoker": ["private"]}


def test_deploy_sh_deploys_the_entry_points_main_py_declares_with_the_same_access() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from stage import entry_points
    finally:
        sys.path.pop(0)
    names, public = entry_points((ROOT / "functions" / "main.py").read_text())
    assert deploy_sh_list("PUBLIC_FUNCTIONS") == public
    assert deploy_sh_list("PRIVATE_FUNCTIONS") == set(names) - public


def test_the_staged_upload_holds_real_files_and_no_symlink(tmp_path: Path) -> None:
    out = staged(tmp_path)
    assert not [path for path in out.rglob("*") if path.is_symlink()]
    assert (out / "shared" / "settings.py").read_bytes() == (ROOT / "shared" / "settings.py").read_bytes()


def test_the_staged_upload_holds_the_function_and_its_library_only(tmp_path: Path) -> None:
    """The stand-ins (``standins/``), the tests and the bench never ship with the functions."""
    out = staged(tmp_path)
    assert {path.name for path in out.iterdir()} == {"main.py", "requirements.txt", "shared", "functions.yaml"}
    assert not list(out.rglob("standins"))


def test_the_tree_has_no_symlinks() -> None:
    tracked = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in tracked.splitlines() if line.startswith("120000")]
    assert links == []
