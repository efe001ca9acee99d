"""An SFTP subsystem for sshd that damages uploads: ``corrupting_sftp.py SFTP_SERVER RULES``.

It relays SFTP packets between the client and OpenSSH's ``sftp-server`` unchanged, except that each
SSH_FXP_WRITE to a file whose name ends with a suffix listed in RULES (one a line, read per session) has the first
byte of its data inverted. The copy keeps its size and loses its content: what a size check misses and a sha256
check read back through SFTP catches. Test support only; standard library only.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FXP_OPEN, FXP_WRITE, FXP_HANDLE = 3, 6, 102


def _read(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def packets(stream: IO[bytes]) -> Iterator[bytes]:
    """SFTP packets (type byte onwards) until the stream ends."""
    while (head := _read(stream, 4)) is not None:
        body = _read(stream, struct.unpack(">I", head)[0])
        if body is None:
            return
        yield body


def string_at(body: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", body, offset)
    return body[offset + 4 : offset + 4 + length], offset + 4 + length


def main() -> None:
    server, rules_file = sys.argv[1], Path(sys.argv[2])
    rules = [line for line in rules_file.read_text().splitlines() if line] if rules_file.exists() else []
    child = subprocess.Popen([server], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    opening: set[int] = set()  # request ids of opens of files to damage
    damaged: set[bytes] = set()  # their handles
    lock = threading.Lock()

    def to_server() -> None:
        assert child.stdin is not None
        for body in packets(sys.stdin.buffer):
            if body[0] == FXP_OPEN:
                (request,) = struct.unpack_from(">I", body, 1)
                name, _ = string_at(body, 5)
                if any(name.decode("utf-8", "replace").endswith(rule) for rule in rules):
                    with lock:
                        opening.add(request)
            elif body[0] == FXP_WRITE:
                handle, offset = string_at(body, 5)
                data_at = offset + 8 + 4  # uint64 file offset, then the data's length
                with lock:
                    hit = handle in damaged
                if hit and len(body) > data_at:
                    body = body[:data_at] + bytes([body[data_at] ^ 0xFF]) + body[data_at + 1 :]
            child.stdin.write(struct.pack(">I", len(body)) + body)
            child.stdin.flush()
        child.stdin.close()

    threading.Thread(target=to_server, daemon=True).start()
    for body in packets(child.stdout):
        if body[0] == FXP_HANDLE:
            (request,) = struct.unpack_from(">I", body, 1)
            with lock:
                if request in opening:
                    opening.discard(request)
                    damaged.add(string_at(body, 5)[0])
        sys.stdout.buffer.write(struct.pack(">I", len(body)) + body)
        sys.stdout.buffer.flush()
    child.wait()


if __name__ == "__main__":
    main()
