"""Which Python the remote image gets: the local interpreter's series when Modal's image
builder supports it, else the nearest supported one (with a one-line notice).

Modal's list: `SUPPORTED_PYTHON_SERIES` in modal/_image.py:82-90 (modal 1.6.4). The client
uses the newest builder by default (`LATEST_IMAGE_BUILDER_VERSION = "2026.10"`, :76), whose
list starts at 3.11; 2025.06 still had 3.10, which Modal calls end-of-life (:94-104). We keep
the series both current builders accept, so an account pinned to either builds.
"""

from __future__ import annotations

import sys

# modal/_image.py:84-85 ("2026.10" and "2025.06"), free-threaded builds left out.
SUPPORTED = ("3.11", "3.12", "3.13", "3.14", "3.15")


def _key(series: str) -> tuple[int, int]:
    major, minor = series.split(".")
    return int(major), int(minor)


def local_series() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def choose(wanted: str = "", local: str | None = None) -> tuple[str, str]:
    """(series for the image, notice or ""). `wanted` is `[image] python`; empty means
    follow the local interpreter."""
    series = wanted or local or local_series()
    if series in SUPPORTED:
        return series, ""
    nearest = min(SUPPORTED, key=lambda s: abs(_key(s)[1] - _key(series)[1]))
    source = "[image] python" if wanted else "the local Python"
    return nearest, (f"{source} {series} is not supported by Modal's image builder; the "
                     f"remote runs Python {nearest} (set [image] python to choose)")
