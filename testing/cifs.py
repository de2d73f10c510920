"""A case-insensitive, normalization-insensitive passthrough filesystem (FUSE), for tests.

It stands in for macOS's default disk (APFS: case-insensitive, and NFC/NFD spellings name
the same file) on a Linux machine whose kernel has neither vfat nor casefold: names keep
the spelling they were created with, and every lookup finds an existing entry whose
`NFC(name).casefold()` matches. So writing `.GIT/hooks/pre-commit` lands in an existing
`.git/hooks/pre-commit`, exactly the hazard of issue 13, class 4.

    python -m testing.cifs BACKING MOUNTPOINT     (foreground; needs root and libfuse2)
"""

from __future__ import annotations

import errno
import os
import sys
import unicodedata
from typing import Any

from fuse import FUSE, FuseOSError, Operations


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


class CaseInsensitive(Operations):  # type: ignore[misc]
    def __init__(self, backing: str) -> None:
        self.backing = os.path.realpath(backing)

    def _real(self, path: str) -> str:
        """The backing path of `path`, each existing component matched case-insensitively."""
        real = self.backing
        for part in [p for p in path.split("/") if p]:
            exact = os.path.join(real, part)
            if os.path.lexists(exact):
                real = exact
                continue
            try:
                names = os.listdir(real)
            except OSError:
                names = []
            match = next((n for n in names if _key(n) == _key(part)), None)
            real = os.path.join(real, match if match is not None else part)
        return real

    # -------------------------------------------------------------- metadata
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        try:
            st = os.lstat(self._real(path))
        except OSError as exc:
            raise FuseOSError(exc.errno) from None
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid",
                                            "st_gid", "st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._real(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._real(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.lchown(self._real(path), uid, gid)

    def utimens(self, path: str, times: Any = None) -> None:
        os.utime(self._real(path), times, follow_symlinks=False)

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._real(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}

    # ------------------------------------------------------------- namespace
    def _wrap(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            raise FuseOSError(exc.errno) from None

    def mkdir(self, path: str, mode: int) -> None:
        self._wrap(os.mkdir, self._real(path), mode)

    def rmdir(self, path: str) -> None:
        self._wrap(os.rmdir, self._real(path))

    def unlink(self, path: str) -> None:
        self._wrap(os.unlink, self._real(path))

    def symlink(self, target: str, source: str) -> None:
        self._wrap(os.symlink, source, self._real(target))

    def rename(self, old: str, new: str) -> None:
        self._wrap(os.replace, self._real(old), self._real(new))

    def link(self, target: str, source: str) -> None:
        self._wrap(os.link, self._real(source), self._real(target))

    # ------------------------------------------------------------------ data
    def open(self, path: str, flags: int) -> int:
        return int(self._wrap(os.open, self._real(path), flags))

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return int(self._wrap(os.open, self._real(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                              mode))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        self._wrap(os.truncate, self._real(path), length)

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        os.fsync(fh)

    def release(self, path: str, fh: int) -> None:
        os.close(fh)


def main(argv: list[str]) -> None:
    backing, mountpoint = argv
    FUSE(CaseInsensitive(backing), mountpoint, foreground=True, nothreads=True,
         default_permissions=True)


if __name__ == "__main__":
    main(sys.argv[1:])
