"""Run the emulator standalone: ``python -m testing.modal_emulator --port P --base-dir D
[--images host|rootfs]``.

Prints the URL (and the environment a client needs) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile

from .rootfs import unavailable_reason
from .server import ImageMode, ModalEmulator


async def _serve(port: int, base_dir: str, images: ImageMode, rtt_ms: float) -> None:
    emulator = ModalEmulator(base_dir, port=port, images=images, rtt_ms=rtt_ms)
    # The emulator imports `modal` lazily (for the image builder version); make that import read
    # the emulator's empty config rather than ~/.modal.toml.
    os.environ["MODAL_CONFIG_PATH"] = emulator.env()["MODAL_CONFIG_PATH"]
    await emulator.start()
    print(emulator.url, flush=True)
    for key, value in emulator.env().items():
        print(f"export {key}={value}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testing.modal_emulator", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--base-dir", default=None, help="directory for sandbox scratch dirs (default: a temp dir)"
    )
    parser.add_argument(
        "--images",
        choices=("host", "rootfs"),
        default="host",
        help="host: images are records, sandboxes run host processes (default); rootfs: images "
        "are built for real and sandboxes run isolated inside them (Linux, root, mmdebstrap)",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="inject this round-trip time into every RPC (and half of it into every further "
        "stream message), to see what a laptop on a real network sees (default: 0)",
    )
    args = parser.parse_args(argv)
    if args.rtt_ms < 0:
        parser.error("--rtt-ms must be >= 0")
    if args.images == "rootfs" and (reason := unavailable_reason()) is not None:
        parser.exit(2, f"modal emulator: {reason}\n")
    base_dir = args.base_dir or tempfile.mkdtemp(prefix="modal-emulator-")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, base_dir, args.images, args.rtt_ms))


if __name__ == "__main__":
    main()
