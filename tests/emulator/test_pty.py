"""PTY execs through the real modal client (issue 16): `sb.exec(..., pty=True)` and the
`PTYInfo` our backend sends both get a real terminal, stdout and stderr merged."""

from __future__ import annotations

import modal
from modal_proto import api_pb2

from testing.modal_emulator import ModalEmulator


def _sandbox(app_name: str) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    return modal.Sandbox.create(app=app, timeout=60)


def test_pty_exec_is_a_terminal_of_the_requested_size(modal_emulator: ModalEmulator,
                                                      app_name: str) -> None:
    sb = _sandbox(app_name)
    info = api_pb2.PTYInfo(enabled=True, winsz_rows=42, winsz_cols=132, env_term="vt220",
                           env_colorterm="truecolor",
                           pty_type=api_pb2.PTYInfo.PTY_TYPE_SHELL)
    script = ('[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; stty size; '
              'echo "$TERM $COLORTERM"; echo to-stderr >&2; '
              'ps -o pid=,sid= -p $$ | awk \'$1 == $2 {print "leader"}\'; exit 3')
    proc = sb._exec("sh", "-c", script, pty_info=info, text=False)
    out = proc.stdout.read()
    assert proc.wait() == 3
    assert out == b"all-tty\r\n42 132\r\nvt220 truecolor\r\nto-stderr\r\nleader\r\n"
    assert proc.stderr.read() == b""
    sb.terminate()


def test_pty_exec_reads_typed_input_and_ctrl_c(modal_emulator: ModalEmulator,
                                               app_name: str) -> None:
    sb = _sandbox(app_name)
    proc = sb.exec("sh", "-c", "trap 'echo got-int; exit 5' INT; read -r x; echo \"x=$x\"; "
                   "while :; do sleep 0.05; done", pty=True, text=False)
    proc.stdin.write(b"typed\r")
    proc.stdin.drain()
    seen = b""
    for chunk in proc.stdout:
        seen += chunk
        if b"x=typed" in seen:
            break
    proc.stdin.write(b"\x03")  # the terminal turns it into SIGINT for the foreground group
    proc.stdin.drain()
    assert proc.wait() == 5
    assert b"typed\r\nx=typed\r\n" in seen
    sb.terminate()
