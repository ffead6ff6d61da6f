"""The local run's port check (scripts/local_ports.py): which ports it needs, and who holds one."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator

import pytest

from scripts import local_ports
from standins.processes import ROOT, free_port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this process listens on, as another server would."""
    with socket.socket() as sock:
        sock.bind((local_ports.HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_another_socket_listens_on_is_named_with_its_purpose_and_process(held_port: int) -> None:
    free = free_port()
    lines = local_ports.busy([local_ports.Port(held_port, "the thing"), local_ports.Port(free, "the other")])
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"  127.0.0.1:{held_port}, for the thing: in use by pid {os.getpid()} ("), lines
    assert "python" in lines[0] or "pytest" in lines[0], lines  # the holder's command line


def test_a_port_is_free_again_once_its_listener_has_closed() -> None:
    with socket.socket() as sock:
        sock.bind((local_ports.HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert local_ports.is_taken(port)
    assert not local_ports.is_taken(port)
    assert local_ports.holder(port) is None


def test_the_run_needs_firebase_jsons_five_emulator_ports_firestores_and_lagos() -> None:
    ports = local_ports.local_run_ports(8080, 3099)
    assert [p.number for p in ports] == [5002, 5001, 9099, 4400, 4500, 8080, 3099]
    assert len({p.purpose for p in ports}) == 7


def test_the_readme_lists_every_port_the_run_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"^It listens on (.+?)\.$", readme, re.MULTILINE | re.DOTALL)
    assert listed, "README: say which ports scripts/run listens on, in a sentence starting 'It listens on'"
    numbers = {int(n) for n in re.findall(r"`(\d{4,5})`", listed.group(1))}
    assert numbers == {p.number for p in local_ports.local_run_ports(8080, 3099)}


def test_the_check_exits_1_naming_the_busy_port_and_2_on_bad_usage(
    held_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_ports.main([str(free_port()), str(held_port)]) == 1
    assert f"127.0.0.1:{held_port}, for the local Lago stand-in (LOCAL_LAGO_PORT): in use by pid" in (
        capsys.readouterr().err
    )
    assert local_ports.main(["8080"]) == 2
    assert "usage:" in capsys.readouterr().err
