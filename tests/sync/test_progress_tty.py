"""What a user sees of a long first sync on a real terminal (a pty): files, bytes and an
ETA while it runs, nothing left once it is done; and nothing at all off a terminal."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from tests.sync.conftest import write_tree

FILES = 400
CHILD = """
import sys
from pathlib import Path
from modal_offload.backends._base import SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.sync import progress
from modal_offload.sync.client import WorkspaceSync
progress.LARGE_FILES = 100
ws, base, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
session = LocalBackend(root=base / "sb").open_session(SessionSpec(name="p", workspace=ws))
if how in ("sink", "fd_sink"):  # as the session host does: the terminal is not its stderr
    import os
    from modal_offload.gateway import fd_sink
    fd = os.open(sys.argv[4], os.O_WRONLY | os.O_NOCTTY)
    target = fd_sink(fd) if how == "fd_sink" else lambda data: os.write(fd, data)
else:
    target = True
report = WorkspaceSync(ws, session, base / "cache", progress=target).up()
print("sent", report.files_sent, flush=True)
"""


def run_on(workspace: Path, tmp_path: Path, how: str,
           columns: int | None = None) -> tuple[str, str]:
    """Run a first sync in a child; return (what its terminal showed, its stdout)."""
    master, slave = os.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    shown: list[bytes] = []

    def drain() -> None:  # read as it is drawn: a full pty would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed its end
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    extra = [os.ttyname(slave)] if how != "stderr" else []
    stderr = subprocess.DEVNULL if how != "stderr" else slave
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workspace), str(tmp_path), how, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
        env={**env, "TERM": "xterm-256color", **({} if columns else {"COLUMNS": "160"})})
    out, _ = child.communicate(timeout=120)
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    assert child.returncode == 0
    return b"".join(shown).decode("utf-8", "replace"), out.decode()


def _check(shown: str, out: str, members: int) -> None:
    assert out.split() == ["sent", str(members)]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # what was drawn, minus the codes
    counts = [(int(a.replace(",", "")), int(b.replace(",", "")))
              for a, b in re.findall(r"([\d,]+)/([\d,]+) files", text)]
    assert counts and all(total == members for _, total in counts), text[-500:]
    assert counts[-1][0] == members  # it finished: every file counted
    assert "sync up" in text and "ETA" in text and "kB" in text
    # Transient: the bar's line is erased once the sync is done (rich's erase-line).
    assert "\x1b[2K" in shown[-200:], repr(shown[-200:])


def test_a_long_first_sync_shows_files_bytes_and_an_eta_then_goes(workspace: Path,
                                                                    tmp_path: Path) -> None:
    write_tree(workspace, {f"d{i % 7}/f{i}.txt": "x" * (i % 300) for i in range(FILES)})
    _check(*run_on(workspace, tmp_path, "stderr"), FILES + 7)


def test_the_host_draws_on_the_clients_terminal_through_a_sink(workspace: Path,
                                                                tmp_path: Path) -> None:
    write_tree(workspace, {f"d{i % 7}/f{i}.txt": "y" * (i % 300) for i in range(FILES)})
    _check(*run_on(workspace, tmp_path, "sink"), FILES + 7)


def test_nothing_is_printed_when_stderr_is_not_a_terminal(workspace: Path,
                                                          tmp_path: Path) -> None:
    write_tree(workspace, {f"f{i}.txt": "z" for i in range(FILES)})
    proc = subprocess.run([sys.executable, "-c", CHILD, str(workspace), str(tmp_path),
                           "stderr"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout.split() == ["sent", str(FILES)]
    assert proc.stderr == ""


def test_the_bar_fits_the_clients_terminal(workspace: Path, tmp_path: Path) -> None:
    write_tree(workspace, {f"d{i % 7}/f{i}.txt": "w" * (i % 300) for i in range(FILES)})
    shown, out = run_on(workspace, tmp_path, "fd_sink", columns=60)
    _check(shown, out, FILES + 7)
    lines = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown))
    assert max(len(line) for line in lines) <= 60  # a wider line would wrap and stay
