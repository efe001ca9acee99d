"""Backup targets: a local directory, and SFTP against OpenSSH's sshd started on loopback for the test."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.backup.client import BackupFile, LocalBackupTarget, SftpBackupTarget, folder_name
from integrations.exceptions import BackupError, IntegrationNotConfigured
from integrations.tests.sshd import Sshd, free_port, start_sshd


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

    with pytest.raises(BackupError, match=r"1 of 1 copies did not match(.|\n)*a.csv: the copy read back has 4 bytes"):
        LocalBackupTarget(tmp_path / "backups").put("", [item])
    assert not list((tmp_path / "backups").iterdir())


def test_local_mismatch_keeps_nothing_of_that_backup(tmp_path: Path) -> None:
    good, bad = make_files(tmp_path / "src", {"good.csv": b"1", "bad.csv": b"2"})
    (tmp_path / "src" / "bad.csv").write_bytes(b"3")

    with pytest.raises(BackupError, match=r"bad\.csv"):
        LocalBackupTarget(tmp_path / "backups").put(folder_name(stamp="20260101T000000Z", run_id=1), [good, bad])
    assert list((tmp_path / "backups").iterdir()) == []  # no folder that retention would count as a backup


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


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """OpenSSH's sshd on a free loopback port with its internal SFTP server."""
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def corrupting_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd whose SFTP subsystem damages writes to the files named with ``corrupt()`` (a byte flipped, size kept)."""
    with start_sshd(tmp_path_factory.mktemp("sshd-corrupting"), corrupting=True) as server:
        yield server


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
    assert [(c.size, c.verified) for c in copied] == [(20000, "size+sha256"), (0, "size+sha256")]


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
        SftpBackupTarget(host="127.0.0.1", port=free_port(), user="u", password="p", remote_path="x", timeout=2)


def test_sftp_copy_with_right_size_but_wrong_content_fails_and_is_removed(
    corrupting_sshd: Sshd, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 400  # 100 KiB: several SFTP writes, each damaged
    files = make_files(tmp_path / "src", {"a.csv": b"x,y\n", "Systems CMDB.xlsx": data})
    corrupting_sshd.corrupt("Systems CMDB.xlsx.part")
    remote = corrupting_sshd.home / "corrupt"
    remote.mkdir()

    with sftp_target(corrupting_sshd, str(remote)) as target, pytest.raises(BackupError) as caught:
        target.put("enreach-20260101T000000Z-run000009", files)

    lines = str(caught.value).splitlines()
    assert lines[0].endswith("1 of 2 copies did not match and nothing was kept:")
    assert lines[1].startswith("Systems CMDB.xlsx: the copy read back has 102400 bytes, sha256 ")
    assert lines[1].endswith(f"expected 102400 bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}… (removed)")
    assert list(remote.iterdir()) == []  # neither the bad copy nor the good one nor the backup folder is left


def test_corrupting_sshd_passes_other_files_intact(corrupting_sshd: Sshd, tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", {"a.csv": b"x,y\n" * 5000})
    corrupting_sshd.corrupt("Systems CMDB.xlsx.part")

    with sftp_target(corrupting_sshd, str(corrupting_sshd.home / "intact")) as target:
        copied = target.put("", files)

    assert copied[0].verified == "size+sha256"
    assert (corrupting_sshd.home / "intact" / "a.csv").read_bytes() == b"x,y\n" * 5000
