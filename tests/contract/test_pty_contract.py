"""Interactive commands get a real terminal on the remote side (issue 16), on every backend.

Each case types into a real pseudo-terminal (tests/terminal.py) holding the real CLI, on the
local backend, the emulator (the real `modal` client; host and rootfs image modes) and the
local backend through the session host, and reads the screen until the expected bytes show.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from testing.modal_emulator import ModalEmulator
from tests.contract.conftest import Target
from tests.helpers import make_workspace
from tests.host.helpers import stop_hosts, wait_for
from tests.terminal import Terminal

CLI = [sys.executable, "-m", "modal_offload"]


def _terminal(target: Target, *args: str) -> Terminal:
    env = {**os.environ, **target.env, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    return Terminal([*CLI, *args], cwd=target.workspace, env=env)


def _warm_up(target: Target) -> None:
    """One command without a terminal: the image is built and the session (and its
    channel, through the host) is open before the terminal command."""
    warm = subprocess.run([*CLI, "exec", "--", "true"], cwd=target.workspace,
                          env={**os.environ, **target.env}, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=300)
    assert warm.returncode == 0, warm.stderr


def test_python_repl_prompt_ctrl_c_and_ctrl_d(target: Target) -> None:
    with _terminal(target, "exec", "--", "python3", "-q") as term:
        term.expect(b">>> ", timeout=60)  # the first command may create the session
        term.send(b"1+1\r")
        term.expect(b"\r\n2\r\n")
        term.expect(b">>> ")
        term.send(b"\x03")  # Ctrl-C, as a byte: the remote terminal makes it SIGINT
        term.expect(b"KeyboardInterrupt")
        term.expect(b">>> ")
        term.send(b"print('still here')\r")
        term.expect(b"\r\nstill here\r\n")
        # Wait for the prompt: readline changes the terminal's mode when it starts reading, and
        # a Ctrl-D typed before that can be lost with the canonical line buffer.
        term.expect(b">>> ")
        term.send(b"\x04")  # Ctrl-D at an empty prompt: EOF, the REPL exits 0
        assert term.wait() == 0
        assert term.stty() == term.before


def test_size_colour_prompt_and_exit_code(target: Target) -> None:
    script = ('stty size; echo "term=$TERM/$COLORTERM"; ls --color=auto -d data; '
              'read -p "name? " x; echo "got $x"; exit 7')
    with _terminal(target, "exec", "-c", script) as term:
        term.expect(b"33 101\r\n", timeout=60)  # the local window size (Terminal's)
        term.expect(b"term=xterm-256color/truecolor\r\n")
        colour = term.expect(b"data")
        assert b"\x1b[" in colour  # ls saw a terminal and coloured the folder
        term.expect(b"name? ")
        term.send(b"ada\r")
        term.expect(b"got ada\r\n")
        assert term.wait() == 7
        assert term.stty() == term.before


def test_a_resized_window_reaches_the_remote_terminal(target: Target) -> None:
    """Over the session channel and on the local backend the remote terminal follows the
    window (vim, less and top redraw). Modal's own PTY exec has no resize: where a command
    takes it (the in-process path; a sandbox whose channel agent cannot open a terminal,
    as the emulator's rootfs sandboxes, which mount no devpts) the size at the start
    stays, as the README says."""
    follows = target.param in ("local", "host", "modal-host")
    program = "\n".join([
        "import os, signal, sys",
        # os.write: a handler may run while the program is still inside print()
        "say = lambda *w: os.write(1, ('%s %d %d\\n' % (*w, *os.get_terminal_size(0)[::-1]))"
        ".encode())",
        "signal.signal(signal.SIGWINCH, lambda *_: say('winch'))",
        "say('start')",
        "sys.stdin.readline()",
        "say('end')",
        "sys.exit(3)"])
    if target.param == "modal-host":
        # The image's first build on a terminal runs in the client, to show Modal's log
        # (host/runner.py): built here first, so this command goes through the host.
        _warm_up(target)
    with _terminal(target, "exec", "--", "python3", "-c", program) as term:
        term.expect(b"start 33 101\r\n", timeout=60)
        for step in range(20):  # a window dragged: a burst of SIGWINCH at the client
            term.resize(20 + step, 60 + step)
        term.resize(40, 120)
        if follows:
            term.expect(b"winch 40 120\r\n")  # the program itself got SIGWINCH
        term.send(b"\r")
        term.expect(b"end 40 120\r\n" if follows else b"end 33 101\r\n")
        assert term.wait() == 3
        term.resize(33, 101)
        assert term.stty() == term.before


def test_keys_travel_as_bytes(target: Target) -> None:
    """Arrows, Ctrl-Z, Ctrl-C, Ctrl-D and text reach a raw remote terminal unchanged."""
    script = "stty raw -echo; echo ready; head -c 9 | od -An -tx1"
    with _terminal(target, "exec", "-c", script) as term:
        term.expect(b"ready", timeout=60)
        term.send(b"\x1b[A\x1a\x03\x04xyz\r")
        term.expect(b"1b 5b 41 1a 03 04 78 79 7a")
        assert term.wait() == 0
        assert term.stty() == term.before


def test_ctrl_c_stops_a_remote_command_with_130(target: Target) -> None:
    with _terminal(target, "exec", "-c", "echo ready; sleep 30; echo not-stopped") as term:
        term.expect(b"ready", timeout=60)
        term.send(b"\x03")
        assert term.wait() == 130
        assert b"not-stopped" not in term.screen
        assert term.stty() == term.before


def test_remote_sigkill_restores_the_terminal(target: Target) -> None:
    with _terminal(target, "exec", "-c", "echo ready; kill -KILL $$") as term:
        term.expect(b"ready", timeout=60)
        assert term.wait() == 137
        assert term.stty() == term.before


def test_pipes_get_separate_streams_and_no_terminal(target: Target) -> None:
    script = "[ -t 0 ] || [ -t 1 ] || echo no-tty; echo out; echo err >&2"
    out = subprocess.run([*CLI, "exec", "-c", script], cwd=target.workspace,
                         env={**os.environ, **target.env}, input=b"", capture_output=True,
                         timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, b"no-tty\nout\n", b"err\n")


def test_exec_t_forces_and_capital_t_forbids_a_terminal(target: Target) -> None:
    forced = subprocess.run([*CLI, "exec", "-t", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty"],
                            cwd=target.workspace, env={**os.environ, **target.env},
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert (forced.returncode, forced.stdout) == (0, b"tty\r\n")
    with _terminal(target, "exec", "-T", "-c", "[ -t 1 ] || echo piped; echo e >&2") as term:
        term.expect(b"piped\r\n", timeout=60)  # CRLF from the local terminal, not a remote one
        assert term.wait() == 0
        assert term.stty() == term.before


def test_killed_client_leaves_the_terminal_usable(target: Target) -> None:
    """Our client dies without cleaning up (SIGKILL): its watchdog restores the terminal."""
    with _terminal(target, "exec", "--", "python3", "-q") as term:
        term.expect(b">>> ", timeout=60)
        assert term.stty() != term.before  # raw mode while the command runs
        os.kill(term.proc.pid, signal.SIGKILL)
        term.wait()
        assert wait_for(lambda: term.stty() == term.before, timeout=10)


def test_sigterm_to_the_client_stops_the_command_and_restores(target: Target) -> None:
    with _terminal(target, "exec", "--", "python3", "-q") as term:
        term.expect(b">>> ", timeout=60)
        os.kill(term.proc.pid, signal.SIGTERM)  # forwarded: the remote REPL dies of it
        assert term.wait() == 128 + signal.SIGTERM
        assert term.stty() == term.before


def test_repl_through_the_host_on_the_emulator(modal_emulator: ModalEmulator, tmp_home: Path,
                                                tmp_path: Path) -> None:
    """The modal backend (real client, emulator) behind the session host: the thin client
    passes its terminal, keeps raw mode to itself, and the host asks Modal for a PTY."""
    ws = make_workspace(tmp_path / "ws")
    env = {k: v for k, v in modal_emulator.env().items() if k != "HOME"}
    env.update({"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HOST": "1"})
    target = Target("modal-host", env, ws, modal_emulator)
    try:
        with _terminal(target, "exec", "--", "python3", "-q") as term:
            term.expect(b">>> ", timeout=60)
            term.send(b"import os; os.get_terminal_size()\r")
            term.expect(b"os.terminal_size(columns=101, lines=33)\r\n")
            term.expect(b">>> ")  # keys typed before readline reads can be lost (see above)
            term.send(b"\x03")
            term.expect(b"KeyboardInterrupt")
            term.expect(b">>> ")
            term.send(b"\x04")
            assert term.wait() == 0
            assert term.stty() == term.before
    finally:
        stop_hosts(tmp_home)


def test_a_terminal_command_through_the_host_takes_no_backend_exec(
        modal_emulator: ModalEmulator, tmp_home: Path, tmp_path: Path) -> None:
    """Issue 17: once the session channel is up, an interactive command runs on the
    agent's own terminal: no TaskExecStart of its own, and the size, TERM, typed input
    and exit code are what a backend's PTY exec gives."""
    ws = make_workspace(tmp_path / "ws")
    env = {k: v for k, v in modal_emulator.env().items() if k != "HOME"}
    env.update({"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HOST": "1"})
    target = Target("modal-host", env, ws, modal_emulator)
    try:
        _warm_up(target)
        before = modal_emulator.call_counts()["TaskExecStart"]
        script = 'stty size; echo "term=$TERM"; read -p "name? " x; echo "got $x"; exit 7'
        with _terminal(target, "exec", "-c", script) as term:
            term.expect(b"33 101\r\n", timeout=60)
            term.expect(b"term=xterm-256color\r\n")
            term.expect(b"name? ")
            term.send(b"ada\r")
            term.expect(b"got ada\r\n")
            assert term.wait() == 7
            assert term.stty() == term.before
        with _terminal(target, "exec", "-c", "echo ready; sleep 30") as term:
            term.expect(b"ready\r\n", timeout=60)
            term.send(b"\x03")  # a byte on the remote terminal, which makes it SIGINT
            assert term.wait() == 130
        assert modal_emulator.call_counts()["TaskExecStart"] == before
    finally:
        stop_hosts(tmp_home)
