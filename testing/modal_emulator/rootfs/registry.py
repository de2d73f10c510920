"""`COPY --from=<image>`: the few registry images the `modal` client copies files from.

`Image.uv_sync` and `Image.uv_pip_install` copy the uv binary out of
`ghcr.io/astral-sh/uv:<tag>` (modal/_image.py:1639, :1953). This machine cannot reach ghcr.io,
so the emulator builds that image's files from the same release on PyPI: the `uv` wheel
carries the identical static binaries (`uv`, `uvx`) in its scripts folder. Any other image
fails the build with one line, as an unreachable registry would. Downloads are cached under
the layer cache (`<cache>/registry/`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

from .cache import cache_dir
from .dockerfile import DockerfileError
from .layers import BuildContext

_UV = re.compile(r"^ghcr\.io/astral-sh/uv:(?P<tag>[A-Za-z0-9._-]+)$")
_LOCK = threading.Lock()
_MEMO: dict[str, BuildContext] = {}


def _uv_files(tag: str) -> BuildContext:
    folder = cache_dir() / "registry" / f"uv-{tag}"
    wheels = sorted(folder.glob("uv-*.whl")) if folder.is_dir() else []
    if not wheels:
        requirement = "uv" if tag == "latest" else f"uv=={tag}"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
             "--dest", str(folder), requirement], capture_output=True, text=True, check=False)
        wheels = sorted(folder.glob("uv-*.whl")) if folder.is_dir() else []
        if done.returncode != 0 or not wheels:
            raise DockerfileError(f"COPY --from=ghcr.io/astral-sh/uv:{tag}: cannot fetch uv "
                                  f"{tag} ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
    files: dict[str, tuple[bytes, int]] = {}
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in wheel.namelist():
            base = Path(name).name
            if ".data/scripts/" in name and base in ("uv", "uvx"):
                files[base] = (wheel.read(name), 0o755)
    if "uv" not in files:
        raise DockerfileError(f"COPY --from=ghcr.io/astral-sh/uv:{tag}: no uv binary in "
                              f"{wheels[-1].name}")
    return BuildContext(files)


def image_files(ref: str) -> BuildContext:
    """The files of registry image `ref`, by path relative to its root."""
    match = _UV.match(ref)
    if match is None:
        raise DockerfileError(f"modal emulator (rootfs) cannot pull {ref} for COPY --from "
                              "(only ghcr.io/astral-sh/uv, from PyPI's uv wheel)")
    with _LOCK:
        if ref not in _MEMO:
            _MEMO[ref] = _uv_files(match["tag"])
        return _MEMO[ref]
