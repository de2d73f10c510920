"""Image mode ``rootfs``: images built for real, sandboxes isolated inside them.

`ModalEmulator(images="rootfs")` uses `RootfsRuntime`: `builds.py` builds images layer by layer
(`layers.py`, cached machine-wide by `cache.py`, base from `base.py`), `container.py` runs each
sandbox in its own namespaces with `nsinit.py` as pid 1. Needs Linux, root, mmdebstrap,
unshare, nsenter (util-linux >= 2.38) and chroot; `unavailable_reason()` says what is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..objects import ObjectStore
from .builds import ImageBuilds
from .cache import LayerCache
from .container import Container, ContainerError
from .layers import LayerBuilder

# Builder 2025.06 is the newest whose debian_slim is bookworm (modal/builder/base-images.json),
# the release whose own python3 is 3.11; 2026.10 would ask for trixie.
IMAGE_BUILDER_VERSION = "2025.06"
_TOOLS = ("mmdebstrap", "unshare", "nsenter", "chroot")

__all__ = [
    "IMAGE_BUILDER_VERSION",
    "Container",
    "ContainerError",
    "LayerCache",
    "RootfsRuntime",
    "unavailable_reason",
]


def unavailable_reason() -> str | None:
    """Why rootfs mode cannot run on this machine, or None if it can."""
    if sys.platform != "linux":
        return "rootfs images need Linux (mount and pid namespaces, overlayfs)"
    if os.geteuid() != 0:
        return "rootfs images need root (namespaces, overlayfs mounts, chroot)"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"rootfs images need {', '.join(missing)} (apt-get install mmdebstrap util-linux)"
    return None


class RootfsRuntime:
    def __init__(self, objects: ObjectStore, cache: LayerCache | None = None) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"modal emulator: {reason}")
        self.cache = cache or LayerCache()
        self.cache.prepare()
        self.layers = LayerBuilder(self.cache)
        self.builds = ImageBuilds(objects, self.layers)

    async def container(self, image_id: str, scratch: Path) -> Container:
        """A started container for a built image (LookupError if the image is not usable)."""
        state = await self.builds.state(image_id)
        container = Container(self.cache, state, scratch)
        await container.start()
        return container
