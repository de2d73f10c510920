"""The base layer: `FROM python:X.Y[.Z]-slim-<codename>` as a real Debian root (Debian packages).

`Image.debian_slim()` sends `FROM python:{version}-slim-{codename}` (modal/_image.py ~2812; the
codename comes from modal/builder/base-images.json: bookworm for builder 2025.06). The emulator
cannot pull Docker Hub, so it builds the closest thing from Debian's archive with mmdebstrap:
Debian's own Python of that release (bookworm: 3.11), pip and setuptools installed into
/usr/local from Debian's bundled wheels (so `pip install --upgrade pip` works, unlike Debian's
python3-pip), `python`/`python3`/`pip` in /usr/local/bin, no EXTERNALLY-MANAGED marker and empty
apt lists, as in the official image. A requested Python series other than the release's own
fails the build with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from .dockerfile import DockerfileError

# Debian release -> the Python series its python3 package provides.
SYSTEM_PYTHON = {"bookworm": "3.11"}
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# The python:*-slim images' PATH (Docker's default with /usr/local/bin put first).
PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bumped whenever the recipe below changes, so cached bases are rebuilt.
_RECIPE_VERSION = 1

_PYTHON_REF = re.compile(r"^python:(\d+)\.(\d+)(?:\.\d+)?-slim-([a-z]+)$")

CUSTOMIZE = """set -e
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf /var/lib/apt/lists/*
set -- /usr/share/python-wheels/pip-*.whl
python3 "$1/pip" install --quiet --no-index --root-user-action=ignore \
  --disable-pip-version-check --find-links /usr/share/python-wheels pip setuptools
ln -sf /usr/bin/python3 /usr/local/bin/python3
ln -sf /usr/bin/python3 /usr/local/bin/python
python3 -c 'import platform; print(platform.python_version())' > /.modal-emulator-python
"""


@dataclass(frozen=True)
class BaseSpec:
    codename: str
    series: str

    @property
    def layer_id(self) -> str:
        recipe = {
            "v": _RECIPE_VERSION,
            "codename": self.codename,
            "packages": PACKAGES,
            "mirror": MIRROR,
            "customize": CUSTOMIZE,
        }
        return (
            "base-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]
        )

    def mmdebstrap_argv(self, target: str) -> list[str]:
        return [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            self.codename,
            target,
            MIRROR,
        ]


def parse_from(ref: str) -> BaseSpec:
    """The base for a `FROM` reference, or DockerfileError saying what is supported."""
    supported = ", ".join(
        f"python:{series}-slim-{codename}" for codename, series in SYSTEM_PYTHON.items()
    )
    match = _PYTHON_REF.match(ref)
    if not match:
        raise DockerfileError(
            f"modal emulator (rootfs) cannot build FROM {ref}: only {supported} "
            '(Image.debian_slim(python_version="3.11")) is available'
        )
    series = f"{match.group(1)}.{match.group(2)}"
    codename = match.group(3)
    if SYSTEM_PYTHON.get(codename) != series:
        raise DockerfileError(
            f"modal emulator (rootfs) cannot build FROM {ref}: Python {series} on {codename} "
            f"is not available; supported: {supported} "
            '(use Image.debian_slim(python_version="3.11"))'
        )
    return BaseSpec(codename, series)
