"""Backup targets: a local directory, and SFTP against OpenSSH's sshd started on loopback for the test."""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integrations.backup.client import BackupFile, LocalBackupTarget, SftpBackupTarget, folder_name
from integrations.exceptions import BackupError, IntegrationNotConfigured

SSHD = "/usr/sbin/sshd"


def make_files(folder: Path, contents: dict[str, bytes]) -> list[BackupFile]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        files.append(BackupFile(folder / name, name, len(data), hashlib.sha256(data).hexdigest()))
    return files


# --- local ---------------------------------------------------------------------------------------------------


def test_local_copies_are_verified_and_complete(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", {"a.csv": b"x,y\n", "Systems CMDB.xlsx": b"PK\x03\x04" * 1000})
    target = LocalBackupTarget(tmp_path / "backups")

    copied = target.put(folder_name(stamp="20260101T000000Z", run_id=7), files)

    folder = tmp_path / "backups" / "enreach-20260101T000000Z-run000007"
    assert sorted(p.name for p in folder.iterdir()) == ["Systems CMDB.xlsx", "a.csv"]  # no .part left behind
    assert [(c.name, c.verified) for c in copied] == [("a.csv", "size+sha256"), ("Systems CMDB.xlsx", "size+sha256")]


def test_local_copy_that_differs_from_the_recorded_checksum_fails(tmp_path: Path) -> None:
    (item,) = make_files(tmp_path / "src", {"a.csv": b"x,y\n"})
    (tmp_path / "src" / "a.csv").write_bytes(b"x,z\n")  # changed on disk after the run recorded it

    with pytest.raises(BackupError, match="does not match"):
        LocalBackupTarget(tmp_path / "backups").put("", [item])
    assert not list((tmp_path / "backups").iterdir())


def test_local_prune_keeps_newest_and_ignores_foreign_folders(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (root / folder_name(stamp=stamp, run_id=1)).mkdir(parents=True)
    (root / "enreach-notes").mkdir()

    removed = LocalBackupTarget(root).prune(keep=2)

    assert removed == ["enreach-20260101T000000Z-run000001"]
    assert sorted(p.name for p in root.iterdir()) == [
        "enreach-20260102T000000Z-run000001", "enreach-20260103T000000Z-run000001", "enreach-notes",
    ]  # fmt: skip


def test_empty_local_path_is_not_configured() -> None:
    with pytest.raises(IntegrationNotConfigured):
        LocalBackupTarget("")


# --- SFTP against a real sshd --------------------------------------------------------------------------------


@dataclass
class Sshd:
    port: int
    user: str
    key: Path
    home: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """OpenSSH's sshd on a free loopback port: throwaway host and user keys, config in a temp dir, key auth only."""
    if not os.path.exists(SSHD):
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, capture_output=True)
    base = tmp_path_factory.mktemp("sshd")
    home = base / "sftp-root"
    home.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "user_key")], check=True)
    shutil.copy(base / "user_key.pub", base / "authorized_keys")
    user = getpass.getuser()
    port = _free_port()
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
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
        yield Sshd(port=port, user=user, key=base / "user_key", home=home)
    finally:
        process.terminate()
        process.wait(timeout=5)


def sftp_target(sshd: Sshd, remote: str, **options: object) -> SftpBackupTarget:
    settings: dict[str, object] = {
        "host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "private_key": str(sshd.key),
        "remote_path": remote, "timeout": 5.0,
    }  # fmt: skip
    settings.update(options)
    return SftpBackupTarget(**settings)  # type: ignore[arg-type]


def test_sftp_upload_is_verified_and_lands_complete(sshd: Sshd, tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", {"a.csv": b"x,y\n" * 5000, "b.csv": b""})
    remote = sshd.home / "nested" / "backups"

    with sftp_target(sshd, str(remote)) as target:
        copied = target.put("enreach-20260101T000000Z-run000001", files)

    folder = remote / "enreach-20260101T000000Z-run000001"
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "b.csv"]
    assert (folder / "a.csv").read_bytes() == b"x,y\n" * 5000
    assert [(c.size, c.verified) for c in copied] == [(20000, "size"), (0, "size")]


def test_sftp_prune_removes_old_backup_folders_only(sshd: Sshd, tmp_path: Path) -> None:
    remote = sshd.home / "prune"
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (remote / folder_name(stamp=stamp, run_id=3) / "sub").mkdir(parents=True)
        (remote / folder_name(stamp=stamp, run_id=3) / "sub" / "f.csv").write_text("x")
    (remote / "keep-me").mkdir()

    with sftp_target(sshd, str(remote)) as target:
        removed = target.prune(keep=1)

    assert removed == ["enreach-20260101T000000Z-run000003", "enreach-20260102T000000Z-run000003"]
    assert sorted(p.name for p in remote.iterdir()) == ["enreach-20260103T000000Z-run000003", "keep-me"]


def test_sftp_wrong_key_is_an_authentication_error(sshd: Sshd, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)

    with pytest.raises(BackupError, match="authentication failed"):
        sftp_target(sshd, str(sshd.home), private_key=str(tmp_path / "other"))


def test_sftp_unknown_host_key_is_rejected_with_known_hosts(sshd: Sshd, tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("")

    with pytest.raises(BackupError, match="cannot connect"):
        sftp_target(sshd, str(sshd.home), known_hosts=str(tmp_path / "known_hosts"))


def test_sftp_refused_port_is_a_backup_error() -> None:
    with pytest.raises(BackupError, match="cannot connect"):
        SftpBackupTarget(host="127.0.0.1", port=_free_port(), user="u", password="p", remote_path="x", timeout=2)
