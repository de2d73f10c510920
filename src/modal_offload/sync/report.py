"""What a sync did, as plain data: the library never prints, callers decide what to show."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple


class Refusal(NamedTuple):
    """A path that was not written (unsafe, special, or ignored by the receiver)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Conflict:
    """A local path kept as it was although the remote changed or deleted it.

    `remote_copy` is where the remote version was saved (relative to the workspace), or
    None when there is nothing to save (a remote deletion, a folder). Unpacks as
    `(path, remote_copy)` for callers that only show those two.
    """

    path: str
    remote_copy: str | None
    reason: str

    def __iter__(self) -> Iterator[str | None]:
        return iter((self.path, self.remote_copy))


@dataclass
class SyncUpReport:
    full: bool = False  # no usable baseline for this session: the whole tree was sent
    scanned: int = 0  # entries in the local manifest
    hashed: int = 0  # files whose content was read to decide
    files_sent: int = 0  # tar members: files, folders, symlinks
    deleted: int = 0  # deletions sent
    content_bytes: int = 0  # file content in the archive
    bytes_sent: int = 0  # everything written to the remote agent (header + tar framing)
    exec_skipped: bool = False  # nothing to send: no remote process was started
    refused: list[Refusal] = field(default_factory=list)  # refused by the remote agent
    seconds: float = 0.0


@dataclass
class SyncBackReport:
    applied: list[str] = field(default_factory=list)  # paths written in the workspace
    deleted: list[str] = field(default_factory=list)  # paths removed from the workspace
    conflicts: list[Conflict] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    over_cap: bool = False  # remote changes exceeded max_bytes: nothing was applied
    skipped_over_cap: list[str] = field(default_factory=list)  # offered again next time
    skipped_bytes: int = 0
    bytes_received: int = 0  # everything read from the remote agent
    offered: int = 0  # paths the remote sent or deleted (0: the baseline is as it was)
    seconds: float = 0.0
