"""`modal-offload host status|stop|serve`: the per-user session host (issue #8)."""

from __future__ import annotations

import time
from typing import Any

from .. import config
from ..errors import OffloadError
from ..host import client, lifecycle


def serve() -> int:
    from ..host.server import serve as serve_forever

    return serve_forever(config.load().host_idle_seconds)


def request(message: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return client.request(message)
    except lifecycle.HostUnavailable as exc:
        raise OffloadError(f"session host refused: {exc}",
                           "or set MODAL_OFFLOAD_RUNTIME_DIR to a folder of yours") from None


def status() -> int:
    reply = request({"op": "status"})
    if reply is None:
        print("host: not running")
        return 0
    commands = reply.get("commands", [])
    print(f"host: running, pid {reply['pid']}, version {reply['version']} "
          f"({reply['fingerprint']}), up {_duration(float(reply['uptime']))}, "
          f"exits after {reply['idle_seconds']:g}s idle")
    print(f"sessions: {', '.join(reply.get('sessions', [])) or 'none'}")
    print(f"watched workspaces: {', '.join(reply.get('workspaces', [])) or 'none'}")
    for line in reach_lines(reply.get("reach", {})):
        print(line)
    print(f"active commands: {len(commands)}")
    if reply.get("log"):
        print(f"log: {reply['log']}")
    for cmd in commands:
        age = _duration(time.time() - float(cmd.get("started_at", time.time())))
        print(f"  {cmd.get('argv0')} in {cmd.get('cwd')} ({age})")
    return 0


def reach_lines(reach: dict[str, Any]) -> list[str]:
    """One line per backend the host has checked: reachable, or offline since when and why."""
    out = []
    for key, state in sorted(reach.items()):
        name = state.get("name", key)
        if state.get("state") == "closed":
            out.append(f"{name}: reachable (last check answered)")
            continue
        since = time.strftime("%H:%M:%S", time.localtime(float(state.get("since", 0))))
        mode = ("commands run locally without waiting" if state.get("state") == "open"
                else "the next command checks again")
        out.append(f"{name}: offline since {since}: {state.get('why')}; {mode}, "
                   "probing in the background")
    return out


def stop() -> int:
    reply = request({"op": "stop"})
    if reply is None:
        print("host: not running")
        return 0
    # It unlinks its socket at once; running commands (if any) finish before it exits.
    print(f"host: pid {reply['pid']} stopped")
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
