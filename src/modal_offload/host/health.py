"""The session host's doctor row, as plain data (doctor_checks turns it into a Row)."""

from __future__ import annotations

import os
import stat

from . import lifecycle, protocol
from .client import request


def host_check(use_host: bool) -> tuple[str, str, str]:
    """(status ok|warn|fail, detail, fix) for `modal-offload doctor`."""
    if not use_host:
        return ("ok", "off (MODAL_OFFLOAD_HOST=0): each routed command starts a fresh process",
                "unset MODAL_OFFLOAD_HOST to use the warm host")
    location = lifecycle.Location()
    try:
        st = os.lstat(location.dir)
    except FileNotFoundError:
        return "ok", "not running; starts on the next routed command", ""
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        return ("fail", f"{location.dir} is not private to this user; commands run "
                "in-process", f"remove {location.dir} or set MODAL_OFFLOAD_RUNTIME_DIR")
    try:
        reply = request({"op": "status"})
    except lifecycle.HostUnavailable as exc:
        return ("fail", f"{exc}; commands run in-process",
                f"remove {location.dir} or set MODAL_OFFLOAD_RUNTIME_DIR")
    except (OSError, protocol.ProtocolError) as exc:
        return "warn", f"the host does not answer ({exc})", "modal-offload host stop"
    if reply is None:
        return "ok", "not running; starts on the next routed command", ""
    detail = (f"running, pid {reply['pid']}, {len(reply.get('sessions', []))} warm "
              f"session(s), {len(reply.get('commands', []))} command(s) running")
    offline = [f"{state.get('name', key)} offline ({state.get('why')})"
               for key, state in sorted(reply.get("reach", {}).items())
               if state.get("state") != "closed"]
    if offline:
        detail += "; " + "; ".join(offline) + ": routed commands run locally"
    if reply.get("fingerprint") != protocol.fingerprint():
        return ("warn", detail + "; it runs older code and is replaced by the next command",
                "modal-offload host stop")
    if offline:
        return "warn", detail, "check the network; the host closes the breaker by itself"
    return "ok", detail, ""
