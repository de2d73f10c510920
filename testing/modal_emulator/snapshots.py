"""Filesystem snapshots of sandboxes (`Sandbox.snapshot_filesystem`), in both image modes.

The client asks the task command router (TaskSnapshotFilesystem,
modal/sandbox/_common.py:907-920) and gets an image id back, which `Image.from_id` and
`Sandbox.create(image=...)` then take like any image. A snapshot holds what the sandbox
changed on top of its image: in host mode the sandbox's whole folder, in rootfs mode its
overlay upper dir (`cp -a` keeps overlayfs' whiteouts and opaque-dir xattrs, so deletions
survive too). A sandbox created from a snapshot starts from the snapshot's base image with
that copy put back first: its folder, or its upper dir before the overlay is mounted.
Snapshots of snapshots chain naturally, since the copy already holds the earlier layers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from . import ids
from .objects import ImageRecord, ObjectStore


@dataclass(frozen=True)
class Snapshot:
    image_id: str
    base_image_id: str  # a built image (never a snapshot): what the sandbox runs on
    files: Path  # the sandbox's folder (host) or overlay upper dir (rootfs)


class SnapshotError(Exception):
    pass


async def _copy(source: Path, target: Path) -> None:
    """`cp -a source/. target/`: modes, owners, links, device nodes and xattrs kept."""
    target.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "cp", "-a", f"{source}/.", str(target),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SnapshotError(f"copying {source} failed: {err.decode(errors='replace').strip()}")


class Snapshots:
    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.by_image: dict[str, Snapshot] = {}

    def base_of(self, image_id: str) -> str:
        snap = self.by_image.get(image_id)
        return snap.base_image_id if snap is not None else image_id

    async def take(self, image_id: str, files: Path, store: Path, builder_version: str) -> str:
        """Snapshot `files` of a sandbox running `image_id`; returns the new image id."""
        new_id = ids.new_id("im")
        await _copy(files, store / new_id)
        parent = self.objects.images.get(image_id)
        self.objects.images[new_id] = ImageRecord(
            image_id=new_id, dockerfile_commands=[], base_image_ids=[image_id],
            context_mount_id="", builder_version=builder_version,
            workdir=parent.workdir if parent is not None else None)
        self.by_image[new_id] = Snapshot(new_id, self.base_of(image_id), store / new_id)
        return new_id

    async def restore(self, image_id: str, into: Path) -> None:
        """Put a snapshot's files into a new sandbox's folder (or upper dir); a no-op for
        an image that is not a snapshot."""
        snap = self.by_image.get(image_id)
        if snap is not None:
            await _copy(snap.files, into)
