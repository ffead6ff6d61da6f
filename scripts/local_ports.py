"""The fixed ports of the local run (``scripts/run``), and which of them something else holds.

    python3 scripts/local_ports.py FIRESTORE_PORT LAGO_PORT

Exits 0 when every port is free on 127.0.0.1; otherwise 1, naming each busy port, what the local
run needs it for and, on Linux, the process that holds it. ``scripts/run`` runs it before
anything else, because a server that finds its port taken fails far from the cause (gcloud's
Firestore emulator, for one, exits with an empty log and the run reports that the rules did not
load). The Firebase emulators' ports come from ``firebase.json``; the other two from the run.

Standard library only: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# firebase.json's emulators, in the order a reader meets them, and what each is for.
FIREBASE_EMULATORS = {
    "hosting": "the Hosting emulator (the chat page)",
    "functions": "the Functions emulator",
    "auth": "the Auth emulator",
    "hub": "the Firebase emulator hub",
    "logging": "the Firebase emulators' log stream",
}


@dataclass(frozen=True)
class Port:
    number: int
    purpose: str


def local_run_ports(firestore_port: int, lago_port: int, firebase_json: Path = ROOT / "firebase.json") -> list[Port]:
    """Every port ``scripts/run`` listens on: firebase.json's emulators, Firestore's, Lago's."""
    emulators = json.loads(firebase_json.read_text())["emulators"]
    ports = [Port(int(emulators[name]["port"]), purpose) for name, purpose in FIREBASE_EMULATORS.items()]
    ports.append(Port(firestore_port, "gcloud's Firestore emulator (the page's conversations)"))
    ports.append(Port(lago_port, "the local Lago stand-in (LOCAL_LAGO_PORT)"))
    return ports


def is_taken(port: int, host: str = HOST) -> bool:
    """Whether binding ``host:port`` fails because the address is in use (what the server would hit)."""
    with socket.socket() as sock:
        # Like the servers themselves: a closed connection's TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on ``port`` (any address), from Linux's /proc/net tables."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXADDR:HEXPORT; state 0A is LISTEN.
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def holder(port: int) -> str | None:
    """``pid N (command line)`` of a process listening on ``port``, when Linux's /proc tells it
    (processes of other users stay hidden unless run as root); None otherwise."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
                command = " ".join(" ".join(arguments).split())  # one line, however the arguments were written
                return f"pid {pid} ({command[:100]})"
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return None


def busy(ports: list[Port]) -> list[str]:
    """One line for each port in ``ports`` that something else holds."""
    lines = []
    for port in ports:
        if is_taken(port.number):
            who = holder(port.number)
            lines.append(f"  {HOST}:{port.number}, for {port.purpose}: in use" + (f" by {who}" if who else ""))
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(arg.isdigit() for arg in argv):
        print("usage: python3 scripts/local_ports.py FIRESTORE_PORT LAGO_PORT", file=sys.stderr)
        return 2
    taken = busy(local_run_ports(int(argv[0]), int(argv[1])))
    if taken:
        print("scripts/run needs these ports, and they are taken:", *taken, sep="\n", file=sys.stderr)
        print(
            "Stop what holds them (another scripts/run, perhaps) and run it again. The Lago stand-in's port "
            "moves with LOCAL_LAGO_PORT; the others are fixed: firebase.json's emulators, and the page looks "
            "for the Firestore emulator on 127.0.0.1:8080.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
