"""`COPY --from=ghcr.io/astral-sh/uv:<tag> /uv <dest>`: the uv binary, from PyPI instead of ghcr.

`Image.uv_pip_install` and `Image.uv_sync` copy uv out of Astral's container image
(modal/_image.py ~1639, ~1953). The emulator cannot pull images, but Astral publishes the same
release binary as the `uv` wheel on PyPI (`uv-<version>.data/scripts/uv`), so it downloads that
wheel (`pip download`, with the emulator's own interpreter) and copies the binary.
"""

from __future__ import annotations

import re
import sys
import tempfile
import zipfile
from pathlib import Path

from .dockerfile import DockerfileError

_IMAGE = re.compile(r"^--from=ghcr\.io/astral-sh/uv:([A-Za-z0-9._-]+)$")


def uv_tag(flag: str) -> str | None:
    """The tag of a `--from=ghcr.io/astral-sh/uv:<tag>` flag, else None."""
    match = _IMAGE.match(flag)
    return match.group(1) if match else None


def download_argv(tag: str, dest: Path) -> list[str]:
    requirement = "uv" if tag == "latest" else f"uv=={tag}"
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        requirement,
    ]


def binary_from(dest: Path) -> bytes:
    """The uv binary inside the wheel `pip download` left in `dest`."""
    for wheel in dest.glob("uv-*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if re.fullmatch(r"uv-[^/]+\.data/scripts/uv", name):
                    return archive.read(name)
    raise DockerfileError("modal emulator (rootfs): the uv wheel from PyPI has no uv binary")


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="modal-emulator-uv-")
