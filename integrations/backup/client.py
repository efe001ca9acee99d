"""Backup targets: copy files into a local directory or onto an SFTP server, verify them, prune old backups.

A backup is a set of files put into one folder (``enreach-<UTC time>-run<id>`` when timestamped, else the root
itself). Each file is written under a ``.part`` name, read back and compared with the size and sha256 the export
recorded (over SFTP too: the protocol has no checksum, so the copy is read back through the connection). Only
when every copy matches are they renamed to their real names; otherwise every ``.part`` (and the folder, if this
backup created it) is removed and ``BackupError`` lists one line per bad file, so a half-written or corrupted copy
never looks like a backup. Retention only ever removes folders named ``enreach-…``: foreign files are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from integrations.exceptions import BackupError, IntegrationNotConfigured

if TYPE_CHECKING:
    import paramiko

logger = logging.getLogger(__name__)

FOLDER_PREFIX = "enreach-"
FOLDER_PATTERN = re.compile(r"^enreach-\d{8}T\d{6}Z-run\d+$")
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One local file to back up, with the size and sha256 it must have once copied."""

    path: Path
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CopiedFile:
    name: str
    size: int
    verified: str  # "size+sha256": the copy was read back and hashed


def folder_name(*, stamp: str, run_id: int) -> str:
    """``enreach-20260101T120000Z-run000042``: sortable by time, recognisable by retention."""
    return f"{FOLDER_PREFIX}{stamp}-run{run_id:06d}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch(item: BackupFile, size: int, digest: str) -> str:
    """One line saying how a copy differs from ``item`` ("" when it does not)."""
    if size == item.size and digest == item.sha256:
        return ""
    return (
        f"{item.name}: the copy read back has {size} bytes, sha256 {digest[:12]}…; expected {item.size} bytes, "
        f"sha256 {item.sha256[:12]}… (removed)"
    )


def mismatch_error(where: str, lines: list[str], total: int) -> BackupError:
    head = f"{where}: {len(lines)} of {total} copies did not match and nothing was kept:"
    return BackupError("\n".join([head, *lines]))


def _log_unknown_host_key() -> paramiko.MissingHostKeyPolicy:
    """A policy that accepts a host key we have no record of, but says so in the log (set BACKUP_KNOWN_HOSTS to
    check it). Built on first use: paramiko is imported only when an SFTP backup runs."""
    import paramiko

    class LogUnknownHostKey(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            logger.warning(
                "SFTP backup host %s has an unchecked %s key %s; set BACKUP_KNOWN_HOSTS to verify it",
                hostname, key.get_name(), key.fingerprint,
            )  # fmt: skip

    return LogUnknownHostKey()


class BackupTarget(Protocol):
    """Where backups go."""

    description: str

    def put(self, folder: str, files: list[BackupFile]) -> list[CopiedFile]: ...

    def check(self) -> str: ...

    def prune(self, keep: int, *, dry_run: bool = False, adding: str = "") -> list[str]: ...

    def close(self) -> None: ...


class LocalBackupTarget:
    """A directory on this machine (or a mounted share)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if not str(root).strip():
            raise IntegrationNotConfigured("BACKUP_LOCAL_PATH is empty.")
        self.root = Path(root)
        self.description = f"local directory {self.root}"

    def put(self, folder: str, files: list[BackupFile]) -> list[CopiedFile]:
        """Copy ``files`` into ``root/folder`` (``folder`` may be empty), each read back and checked by sha256."""
        target = self.root / folder if folder else self.root
        created = not target.exists()
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"Cannot create backup folder {target}: {exc.strerror or exc}") from None
        copied, partials, bad = [], [], []
        try:
            for item in files:
                partial = target / (item.name + ".part")
                partials.append(partial)
                shutil.copyfile(item.path, partial)
                size, digest = partial.stat().st_size, file_sha256(partial)
                if problem := mismatch(item, size, digest):
                    bad.append(problem)
                copied.append(CopiedFile(item.name, size, "size+sha256"))
            if bad:
                raise mismatch_error(str(target), bad, len(files))
            for partial in partials:
                os.replace(partial, partial.with_name(partial.name.removesuffix(".part")))
        except (OSError, BackupError) as exc:
            for partial in partials:
                partial.unlink(missing_ok=True)
            if created and folder:
                shutil.rmtree(target, ignore_errors=True)
            if isinstance(exc, BackupError):
                raise
            raise BackupError(f"Cannot copy to {target}: {exc.strerror or exc}") from None
        return copied

    def check(self) -> str:
        """What a backup would write into (the root, or the nearest existing parent that would hold it)."""
        nearest = self.root
        while not nearest.exists() and nearest != nearest.parent:
            nearest = nearest.parent
        if not nearest.is_dir() or not os.access(nearest, os.W_OK):
            raise BackupError(f"Cannot write backups under {self.root}: {nearest} is not a writable directory")
        return f"{self.root} " + ("exists" if nearest == self.root else f"would be created in {nearest}")

    def prune(self, keep: int, *, dry_run: bool = False, adding: str = "") -> list[str]:
        """Remove all but the newest ``keep`` backup folders; return the names removed.

        A dry run removes nothing and returns what would go once the folder ``adding`` is there too.
        """
        try:
            names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and FOLDER_PATTERN.match(p.name))
        except FileNotFoundError:
            return []
        if dry_run and adding:
            names = sorted({*names, adding})
        removed = [name for name in names[: max(0, len(names) - keep)] if name != adding]
        for name in [] if dry_run else removed:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return removed

    def close(self) -> None:
        pass


class SftpBackupTarget:
    """A directory on an SFTP server (paramiko), with a password or a private key."""

    def __init__(
        self,
        *,
        host: str,
        port: int = 22,
        user: str,
        remote_path: str,
        password: str = "",
        private_key: str = "",
        known_hosts: str = "",
        timeout: float = 30.0,
    ) -> None:
        if not host or not user:
            raise IntegrationNotConfigured("SFTP backups need BACKUP_HOST and BACKUP_USER.")
        if not password and not private_key:
            raise IntegrationNotConfigured("SFTP backups need BACKUP_PASSWORD or BACKUP_PRIVATE_KEY.")
        self.remote_path = remote_path.rstrip("/") or "."
        self.description = f"sftp://{user}@{host}:{port}/{self.remote_path.lstrip('/')}"
        import paramiko  # on first use: only SFTP backups need it

        ssh = paramiko.SSHClient()
        if known_hosts:
            ssh.load_host_keys(known_hosts)
            ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            ssh.set_missing_host_key_policy(_log_unknown_host_key())
        try:
            ssh.connect(
                host,
                port=port,
                username=user,
                password=password or None,
                key_filename=private_key or None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
            self.sftp = ssh.open_sftp()
            self.sftp.get_channel().settimeout(timeout)  # type: ignore[union-attr]
        except paramiko.AuthenticationException:
            ssh.close()
            raise BackupError(f"{self.description}: authentication failed for user {user!r}") from None
        except (TimeoutError, paramiko.SSHException, OSError) as exc:
            ssh.close()
            raise BackupError(f"{self.description}: cannot connect ({type(exc).__name__}: {exc})") from None
        self.ssh = ssh

    def __enter__(self) -> SftpBackupTarget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _makedirs(self, path: str) -> list[str]:
        """Create ``path`` and missing parents; return the folders created, outermost first."""
        created = []
        current = "/" if path.startswith("/") else ""
        for part in [p for p in path.split("/") if p]:
            current = posixpath.join(current, part) if current else part
            try:
                self.sftp.stat(current)
            except FileNotFoundError:
                self.sftp.mkdir(current)
                created.append(current)
        return created

    def _remote_sha256(self, path: str) -> tuple[int, str]:
        """Size and sha256 of a remote file, read back through the SFTP connection."""
        digest, size = hashlib.sha256(), 0
        with self.sftp.open(path, "rb") as handle:
            handle.prefetch()
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def put(self, folder: str, files: list[BackupFile]) -> list[CopiedFile]:
        """Upload ``files`` into ``remote_path/folder``, each read back and checked by size and sha256."""
        import paramiko

        target = posixpath.join(self.remote_path, folder) if folder else self.remote_path
        copied: list[CopiedFile] = []
        partials: list[str] = []
        created: list[str] = []
        try:
            created = self._makedirs(target)
            bad = []
            for item in files:
                partial = posixpath.join(target, item.name) + ".part"
                partials.append(partial)
                self.sftp.put(str(item.path), partial, confirm=False)
                size, digest = self._remote_sha256(partial)
                if problem := mismatch(item, size, digest):
                    bad.append(problem)
                copied.append(CopiedFile(item.name, size, "size+sha256"))
            if bad:
                raise mismatch_error(self.description, bad, len(files))
            for partial in partials:
                self.sftp.posix_rename(partial, partial.removesuffix(".part"))
        except (OSError, paramiko.SSHException, BackupError) as exc:
            self._discard(partials, created)
            if isinstance(exc, BackupError):
                raise
            raise BackupError(f"{self.description}: upload failed ({type(exc).__name__}: {exc})") from None
        return copied

    def _discard(self, partials: list[str], created: list[str]) -> None:
        """Remove the ``.part`` copies of a failed backup and the folders it created (best effort)."""
        import paramiko

        for path in partials:
            with contextlib.suppress(OSError, paramiko.SSHException):
                self.sftp.remove(path)
        for path in reversed(created):
            with contextlib.suppress(OSError, paramiko.SSHException):
                self.sftp.rmdir(path)

    def check(self) -> str:
        """Whether ``remote_path`` exists (or which existing parent it would be created in)."""
        import paramiko

        nearest = self.remote_path
        try:
            while True:
                try:
                    self.sftp.stat(nearest)
                    break
                except FileNotFoundError:
                    parent = posixpath.dirname(nearest.rstrip("/"))
                    if parent in (nearest, ""):
                        nearest = "."
                        self.sftp.stat(nearest)
                        break
                    nearest = parent
        except (OSError, paramiko.SSHException) as exc:
            raise BackupError(f"{self.description}: cannot read {nearest} ({type(exc).__name__}: {exc})") from None
        return f"{self.description} " + ("exists" if nearest == self.remote_path else f"would be created in {nearest}")

    def prune(self, keep: int, *, dry_run: bool = False, adding: str = "") -> list[str]:
        """Remove all but the newest ``keep`` backup folders; return the names removed.

        A dry run removes nothing and returns what would go once the folder ``adding`` is there too.
        """
        import paramiko

        try:
            entries = self.sftp.listdir_attr(self.remote_path)
        except FileNotFoundError:
            return []
        names = sorted(e.filename for e in entries if stat.S_ISDIR(e.st_mode or 0) and FOLDER_PATTERN.match(e.filename))
        if dry_run and adding:
            names = sorted({*names, adding})
        removed = [name for name in names[: max(0, len(names) - keep)] if name != adding]
        try:
            for name in [] if dry_run else removed:
                self._rmtree(posixpath.join(self.remote_path, name))
        except (OSError, paramiko.SSHException) as exc:
            raise BackupError(f"{self.description}: pruning old backups failed ({exc})") from None
        return removed

    def _rmtree(self, path: str) -> None:
        for entry in self.sftp.listdir_attr(path):
            child = posixpath.join(path, entry.filename)
            if stat.S_ISDIR(entry.st_mode or 0):
                self._rmtree(child)
            else:
                self.sftp.remove(child)
        self.sftp.rmdir(path)

    def close(self) -> None:
        self.ssh.close()
