"""OpenSSH's sshd on a free loopback port for tests: throwaway host and user keys, config in a temp dir, key auth.

``start_sshd(base)`` serves SFTP with ``internal-sftp``; ``start_sshd(base, corrupting=True)`` serves it through
``corrupting_sftp.py`` (OpenSSH's sftp-server behind a relay that flips one byte of each write to the files named
in ``Sshd.corrupt``), so a test can watch a copy arrive with the right size and the wrong content.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
RELAY = Path(__file__).with_name("corrupting_sftp.py")


@dataclass
class Sshd:
    port: int
    user: str
    key: Path
    home: Path
    rules: Path  # names (suffixes) of files the corrupting relay damages, one a line

    def corrupt(self, *suffixes: str) -> None:
        self.rules.write_text("".join(f"{suffix}\n" for suffix in suffixes))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_openssh() -> None:
    """OpenSSH's server; a missing one fails the test (``make test-deps`` installs it before the tests)."""
    for path in (SSHD, SFTP_SERVER):
        if not os.path.exists(path):
            pytest.fail(
                f"{path} is missing: `make test-deps` installs Debian's openssh-server (make test runs it first)"
            )


@contextlib.contextmanager
def start_sshd(base: Path, *, corrupting: bool = False) -> Iterator[Sshd]:
    """Run sshd until the block ends; ``base`` is an empty temporary directory."""
    _ensure_openssh()
    home = base / "sftp-root"
    home.mkdir()
    rules = base / "corrupt-rules"
    rules.write_text("")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "user_key")], check=True)
    shutil.copy(base / "user_key.pub", base / "authorized_keys")
    user = getpass.getuser()
    port = free_port()
    subsystem = f"{sys.executable} {RELAY} {SFTP_SERVER} {rules}" if corrupting else "internal-sftp"
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nSubsystem sftp {subsystem}\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory sshd requires as root
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(base / "sshd_config")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"sshd did not start: {output}")
            time.sleep(0.05)
    try:
        yield Sshd(port=port, user=user, key=base / "user_key", home=home, rules=rules)
    finally:
        process.terminate()
        process.wait(timeout=5)
