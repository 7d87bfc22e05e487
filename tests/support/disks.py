"""File systems of a test's own: a small tmpfs (a disk that fills up) and a small
ext4 image (where the test knows which inode a new file gets). Both need root,
as on the CI machines; the fixtures that mount them are in tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


class SmallDisk:
    """A size-limited tmpfs mounted on ``path`` (needs root, as on the CI machines)."""

    def __init__(self, path: Path, size: str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(self.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs for the disk-full test (root needed): {r.stderr.strip()}")

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _system_tool(name: str) -> str:
    exe = shutil.which(name, path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin")))
    if exe is None:
        pytest.fail(f"{name} is missing (Debian package e2fsprogs)")
    return exe


class PrivateExt4:
    """A small ext4 file system of its own on ``path``: an image file made with
    mkfs.ext4 and loop-mounted (needs root, as on the CI machines). No other
    process makes files on it, so what ext4 hands out there is up to the test:
    a new file in a folder gets the lowest free inode of the folder's group, and
    a file deleted (and closed by every process) gives its inode to the next file
    made in its folder. (A tmpfs does not: it numbers its inodes on and on.)"""

    def __init__(self, image: Path, path: Path, size: str):
        self.image, self.path = Path(image), Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(_bytes(size))
        # with its journal (the default): without one, ext4 holds back inodes freed moments ago
        r = subprocess.run([_system_tool("mkfs.ext4"), "-q", "-F", "-m", "0", str(self.image)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"mkfs.ext4 failed: {r.stderr.strip()}")
        r = subprocess.run(["mount", "-t", "ext4", "-o", "loop", str(self.image), str(self.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot loop-mount an ext4 image for the test (root needed): {r.stderr.strip()}")

    def umount(self) -> None:
        if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)  # the loop device goes with it
        self.image.unlink(missing_ok=True)


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].lower() in units else int(size)
