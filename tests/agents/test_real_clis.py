"""The real agent CLIs (pinned, from npm) run headless against a scripted model on loopback,
with our hooks installed by `modal-offload agents install`: what actually ran, through which
door, with which output and exit code. Selected with `-m real_cli` (.ci/run runs it after
`make test`). A tool that cannot be installed here is reported as unverified (skipped with the
reason), never claimed.

Proof that a command went through the runner: the runner's gateway (local sandbox backend)
runs it with MODAL_OFFLOAD_REMOTE=1, so `printenv MODAL_OFFLOAD_REMOTE` prints `1` there and
nothing here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modal_offload.install import jsonc
from testing import agent_clis
from tests.helpers import cli, local_backend_env

pytestmark = [pytest.mark.real_cli, pytest.mark.timeout(900)]

ROUTED = "printenv MODAL_OFFLOAD_REMOTE | sed s/1/routed-1/; exit 3"
DENIED = "rm -rf victim"
GIT = "git status --short -- untracked.txt | head -5"
# The form ANTIGRAVITY.md tells agents to type: must run once through the runner, unwrapped.
RUNNER_FORM = "$HOME/.local/bin/modal-agent-runner -c 'printenv MODAL_OFFLOAD_REMOTE'"


def tool(name: str) -> Path:
    path, why = agent_clis.install(name)
    if path is None:
        pytest.skip(f"{name} {agent_clis.PINS[name][1]}: unverified here ({why})")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Mock:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def results(self) -> list[str]:
        if not self.log.exists():
            return []
        lines = [json.loads(x) for x in self.log.read_text().splitlines()]
        return [x["data"]["text"] for x in lines if x["kind"] == "tool_result"]


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[Any]:
    started: list[Mock] = []

    def start(commands: list[str]) -> Mock:
        port = free_port()
        spec = tmp_path / f"commands-{port}.json"
        spec.write_text(json.dumps(commands))
        log = tmp_path / f"mock-{port}.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "testing.agent_mock", str(port),
                                 str(spec), str(log)], cwd=agent_clis.REPO,
                                stdin=subprocess.DEVNULL)
        m = Mock(port, log, proc)
        started.append(m)
        for _ in range(200):  # bounded: the server binds within a few hundred ms
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return m
            if proc.poll() is not None:
                raise RuntimeError("mock model server exited")
            subprocess.run(["sleep", "0.05"], check=True)
        raise RuntimeError("mock model server did not listen")

    yield start
    for m in started:
        m.proc.terminate()
        m.proc.wait(timeout=10)


@pytest.fixture
def ws(tmp_path: Path, tmp_home: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".modal-offload.toml").write_text("")
    (root / "victim").mkdir()
    (root / "victim" / "keep.txt").write_text("precious\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)
    (root / "untracked.txt").write_text("x\n")
    done = cli("agents", "install", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def agent_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **local_backend_env(), **extra}


def run_agent(argv: list[str], cwd: Path, env: dict[str, str],
              timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # Own process group: a CLI that leaves helpers behind (Cline's hub) is ended with it.
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# ---------------------------------------------------------------- Claude Code
def claude_settings(ws: Path, home: Path, allow: list[str], deny: list[str]) -> None:
    path = ws / ".claude" / "settings.json"
    data: Any = jsonc.loads(path.read_text())
    data["permissions"] = {"allow": allow, "deny": deny}
    path.write_text(json.dumps(data, indent=2))
    # The user has accepted Claude's trust dialog here (else project allow rules are ignored).
    (home / ".claude.json").write_text(json.dumps(
        {"projects": {str(ws): {"hasTrustDialogAccepted": True}}}))


CLAUDES = ["claude", "claude-2.1.197"]


def run_claude(ws: Path, port: int, name: str = "claude") -> subprocess.CompletedProcess[str]:
    env = agent_env(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}",
                    ANTHROPIC_API_KEY="sk-placeholder",
                    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    return run_agent([str(tool(name)), "-p", "run", "--output-format", "stream-json",
                      "--verbose"], ws, env)


@pytest.mark.parametrize("name", CLAUDES)
def test_claude_routes_keeps_git_local_and_keeps_the_users_deny_rule(
        ws: Path, tmp_home: Path, mock: Any, name: str) -> None:
    claude_settings(ws, tmp_home, allow=["Bash(printenv:*)", "Bash(git status:*)"],
                    deny=["Bash(rm -rf:*)"])
    m = mock([ROUTED, DENIED, GIT, "ls -d victim"])
    done = run_claude(ws, m.port, name)
    assert done.returncode == 0, done.stderr[-2000:]
    routed, denied, git, unlisted = m.results()
    # Ran through the runner (the remote marker is set there), exact stdout and exit code.
    assert routed == "Exit code 3\nrouted-1"
    # The user's deny rule applies to the command as the model wrote it.
    assert "deny: Bash(rm -rf:*)" in denied
    assert (ws / "victim" / "keep.txt").read_text() == "precious\n"
    # git stays local (the remote copy has no .git): it sees the real repository.
    assert git == "?? untracked.txt"
    # No allow rule covers `ls`: Claude asks, as it would have without us (print mode: refused).
    assert "modal-agent-runner -c 'ls -d victim'" in unlisted
    assert "no Claude Code allow rule covers it" in unlisted
    result = json.loads(done.stdout.strip().splitlines()[-1])
    denials = [d["tool_input"]["command"] for d in result["permission_denials"]]
    assert denials[0] == DENIED and "modal-agent-runner -c 'ls -d victim'" in denials[1]


def hook_entry(ws: Path, settings: str, event: str) -> dict[str, Any]:
    data: Any = jsonc.loads((ws / settings).read_text())
    entry: dict[str, Any] = data["hooks"][event][-1]["hooks"][0]
    return entry


def rewrite_hook(ws: Path, settings: str, event: str, prefix: str, timeout: int) -> None:
    path = ws / settings
    data: Any = jsonc.loads(path.read_text())
    entry = data["hooks"][event][-1]["hooks"][0]
    entry["command"] = prefix + entry["command"]
    entry["timeout"] = timeout
    path.write_text(json.dumps(data, indent=2))


def break_interpreter(ws: Path, settings: str, event: str) -> None:
    """Point our hook command at an interpreter that does not exist."""
    python = hook_entry(ws, settings, event)["command"].split()[0]
    path = ws / settings
    path.write_text(path.read_text().replace(python, "/nonexistent/python"))


@pytest.mark.parametrize("name", CLAUDES)
@pytest.mark.parametrize("failure", ["timeout", "no-interpreter", "runner-missing"])
def test_claude_failing_hook_blocks(ws: Path, tmp_home: Path, mock: Any, failure: str,
                                    name: str) -> None:
    claude_settings(ws, tmp_home, allow=["Bash(touch:*)"], deny=[])
    assert hook_entry(ws, ".claude/settings.json", "PreToolUse")["onFailure"] == "block"
    if failure == "timeout":
        rewrite_hook(ws, ".claude/settings.json", "PreToolUse", "sleep 5; ", 1)
    elif failure == "no-interpreter":
        break_interpreter(ws, ".claude/settings.json", "PreToolUse")
    else:
        (tmp_home / ".local" / "bin" / "modal-agent-runner").unlink()
    m = mock(["touch ran-anyway"])
    done = run_claude(ws, m.port, name)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = m.results()
    if name == "claude-2.1.197" and failure == "timeout":
        # 2.1.197 has no `onFailure`: a timed-out hook is cancelled and the command runs.
        # This pins that known gap (README: partly) so a change in it is noticed.
        assert (ws / "ran-anyway").exists()
        return
    assert not (ws / "ran-anyway").exists(), result
    assert "hook" in result.lower()


# ---------------------------------------------------------------- Gemini CLI
def gemini_script(path: Path, commands: list[str]) -> Path:
    """Gemini's own replay file (`--fake-responses-non-strict`): one shell call per command,
    then final text, then answers for its side calls (next-speaker check, token counts)."""
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}

    def turn(part: dict[str, Any]) -> dict[str, Any]:
        return {"method": "generateContentStream", "response": [{"candidates": [{
            "content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
            "index": 0}], "usageMetadata": usage}]}

    lines = [turn({"functionCall": {"name": "run_shell_command",
                                    "args": {"command": c, "description": "test"}}})
             for c in commands]
    lines.append(turn({"text": "ALLDONE"}))
    for _ in range(10):
        lines.append({"method": "generateContent", "response": {"candidates": [{"content": {
            "role": "model", "parts": [{"text": '{"reasoning":"x","next_speaker":"user"}'}]},
            "finishReason": "STOP", "index": 0}]}})
        lines.append({"method": "countTokens", "response": {"totalTokens": 10}})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def gemini_trust(home: Path, ws: Path) -> None:
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(ws): "TRUST_FOLDER"}))


def gemini_user_env(home: Path) -> None:
    """The user's key lives in ~/.gemini/.env: it must still load with our hook installed
    (a workspace .gemini/.env would shadow it; we write none)."""
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / ".env").write_text("GEMINI_API_KEY=placeholder-from-user-env\n")


def run_gemini(ws: Path, home: Path, commands: list[str]) -> list[str]:
    """The function responses Gemini sent back to the model, from its chat record."""
    script = gemini_script(ws.parent / "gemini-replay.jsonl", commands)
    gemini_user_env(home)
    env = agent_env()
    env.pop("GEMINI_API_KEY", None)
    done = run_agent([str(tool("gemini")), "-p", "run tests", "--yolo", "-o", "stream-json",
                      "--fake-responses-non-strict", str(script)], ws, env)
    assert done.returncode == 0, done.stderr[-2000:]
    out: list[tuple[str, str]] = []
    for chat in sorted((home / ".gemini" / "tmp").glob("*/chats/session-*.jsonl")):
        for line in chat.read_text().splitlines():
            for part in json.loads(line).get("content", []) or []:
                response = part.get("functionResponse") if isinstance(part, dict) else None
                if response and response.get("id") not in {r[0] for r in out}:
                    out.append((response["id"], str(response["response"].get(
                        "output", response["response"].get("error", "")))))
    return [text for _, text in out]


def test_gemini_routes_and_keeps_git_local(ws: Path, tmp_home: Path) -> None:
    gemini_trust(tmp_home, ws)
    routed, git, runner_form = run_gemini(ws, tmp_home, [ROUTED, GIT, RUNNER_FORM])
    assert "Output: routed-1\nExit Code: 3\n" in routed
    assert "modified by a hook" in routed
    assert "Output: ?? untracked.txt\n" in git
    assert "modified by a hook" not in git
    # The runner typed by the agent is left alone (not wrapped a second time) and runs remotely.
    assert "Output: 1\n" in runner_form and "modified by a hook" not in runner_form


def test_gemini_untrusted_folder_is_reported_with_the_fix(ws: Path, tmp_home: Path) -> None:
    # Gemini 0.61 loads no workspace settings (so no hook) in an untrusted folder; headless it
    # refuses to start at all. `agents check` says so and how to trust it.
    script = gemini_script(ws.parent / "gemini-replay.jsonl", [ROUTED])
    done = run_agent([str(tool("gemini")), "-p", "run tests", "--yolo", "-o", "stream-json",
                      "--fake-responses-non-strict", str(script)], ws,
                     agent_env(GEMINI_API_KEY="placeholder"))
    assert done.returncode != 0 and "not running in a trusted directory" in done.stderr
    check = cli("agents", "check", "--only", "hooks", cwd=ws)
    assert b"untrusted gemini hook" in check.stdout and b"TRUST_FOLDER" in check.stdout
    gemini_trust(tmp_home, ws)
    (routed,) = run_gemini(ws, tmp_home, [ROUTED])
    assert "Output: routed-1\nExit Code: 3\n" in routed
    assert b"ok        gemini hook" in cli("agents", "check", "--only", "hooks", cwd=ws).stdout


@pytest.mark.parametrize("failure", ["runner-missing", "no-interpreter", "timeout"])
def test_gemini_failing_hook(ws: Path, tmp_home: Path, failure: str) -> None:
    gemini_trust(tmp_home, ws)
    settings = ".gemini/settings.json"
    if failure == "runner-missing":
        (tmp_home / ".local" / "bin" / "modal-agent-runner").unlink()
    elif failure == "no-interpreter":
        break_interpreter(ws, settings, "BeforeTool")
    else:
        rewrite_hook(ws, settings, "BeforeTool", "sleep 5; ", 1000)
    (result,) = run_gemini(ws, tmp_home, ["touch ran-anyway"])
    if failure == "timeout":
        # Gemini CLI 0.61 cancels a timed-out hook and runs the tool (no fail-closed
        # option): pinned here, README says partly.
        assert (ws / "ran-anyway").exists()
        return
    assert not (ws / "ran-anyway").exists(), result
    assert "blocked" in result.lower()


# ---------------------------------------------------------------- Codex
def codex_config(home: Path, ws: Path, port: int) -> None:
    (home / ".codex").mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(f"""model = "gpt-5-codex"
model_provider = "mock"
[model_providers.mock]
name = "mock"
base_url = "http://127.0.0.1:{port}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0
[projects."{ws}"]
trust_level = "trusted"
""")


def run_codex(ws: Path, home: Path, mock: Any, commands: list[str],
              approved: bool = True) -> list[str]:
    m = mock(commands)
    codex_config(home, ws, m.port)
    # `--dangerously-bypass-hook-trust` stands in for the user's one-time "Trust all and
    # continue" (an interactive screen); without either, Codex does not run project hooks.
    extra = ["--dangerously-bypass-hook-trust"] if approved else []
    done = run_agent([str(tool("codex")), "exec", "--json",
                      "--dangerously-bypass-approvals-and-sandbox", *extra, "run"], ws,
                     agent_env(MOCK_API_KEY="placeholder"))
    assert done.returncode == 0, done.stderr[-2000:]
    results: list[str] = m.results()
    return results


def codex_output(result: str) -> tuple[int, str]:
    head, _, out = result.partition("\nOutput:\n")
    code = int(head.split("Process exited with code ")[1].split("\n")[0])
    return code, out


def test_codex_routes_and_keeps_git_local(ws: Path, tmp_home: Path, mock: Any) -> None:
    routed, git = run_codex(ws, tmp_home, mock, [ROUTED, GIT])
    assert codex_output(routed) == (3, "routed-1\n")
    assert codex_output(git) == (0, "?? untracked.txt\n")


def test_codex_without_approval_runs_no_hook_and_check_says_so(
        ws: Path, tmp_home: Path, mock: Any) -> None:
    (routed,) = run_codex(ws, tmp_home, mock, [ROUTED], approved=False)
    assert codex_output(routed) == (3, "")  # ran here, unrouted: the hook is inert
    check = cli("agents", "check", "--only", "hooks", cwd=ws)
    assert b"needs approval" in check.stdout and check.returncode != 0


@pytest.mark.parametrize("failure", ["runner-missing", "no-interpreter", "timeout"])
def test_codex_failing_hook(ws: Path, tmp_home: Path, mock: Any, failure: str) -> None:
    settings = ".codex/hooks.json"
    if failure == "runner-missing":
        (tmp_home / ".local" / "bin" / "modal-agent-runner").unlink()
    elif failure == "no-interpreter":
        break_interpreter(ws, settings, "PreToolUse")
    else:
        rewrite_hook(ws, settings, "PreToolUse", "sleep 5; ", 1)
    (result,) = run_codex(ws, tmp_home, mock, ["touch ran-anyway"])
    if failure == "timeout":
        # Codex 0.171 lets a timed-out hook's command run (no fail-closed option): pinned
        # here, README says partly.
        assert (ws / "ran-anyway").exists()
        return
    assert not (ws / "ran-anyway").exists(), result
    assert "blocked" in result.lower() or "hook" in result.lower(), result


# ---------------------------------------------------------------- Cline CLI
def run_cline(ws: Path, home: Path, mock: Any, commands: list[str]) -> tuple[list[str], str]:
    """(the tool results the model got, Cline's --json event stream)."""
    m = mock(commands)
    binary = tool("cline")
    env = agent_env(CLINE_HUB_PORT=str(free_port()), CLINE_NO_AUTO_UPDATE="1")
    auth = run_agent([str(binary), "auth", "openai-compatible", "-k", "placeholder", "-m",
                      "mock-model", "-b", f"http://127.0.0.1:{m.port}/v1"], ws, env)
    assert auth.returncode == 0, auth.stderr[-2000:]
    try:
        done = run_agent([str(binary), "--json", "run the command"], ws, env)
    finally:
        stop_cline_hub(home)
    results: list[str] = m.results()
    return results, done.stdout


def stop_cline_hub(home: Path) -> None:
    """Cline 3.x leaves a hub daemon running after the CLI exits: end the ones started with
    this test's HOME (and only those)."""
    marker = b"HOME=" + str(home).encode() + b"\0"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (b"--cline-hub-daemon" in (proc / "cmdline").read_bytes()
                    and marker in (proc / "environ").read_bytes()):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue


def cline_result(text: str) -> dict[str, Any]:
    (item,) = json.loads(text)
    assert isinstance(item, dict)
    return item


def test_cline_rewrites_run_commands_and_keeps_git_local(ws: Path, tmp_home: Path,
                                                         mock: Any) -> None:
    (routed, git), events = run_cline(ws, tmp_home, mock, [ROUTED, GIT])
    routed_item = cline_result(routed)
    assert routed_item["query"].endswith(
        "modal-agent-runner -c 'printenv MODAL_OFFLOAD_REMOTE | sed s/1/routed-1/; exit 3'")
    assert routed_item["result"] == "[Command exited with code 3]\nrouted-1\n"
    assert cline_result(git) == {"query": GIT, "result": "?? untracked.txt\n",
                                 "success": True}
    assert '"finishReason":"completed"' in events.replace(" ", "")


@pytest.mark.parametrize("failure", ["runner-missing", "no-interpreter"])
def test_cline_failing_hook_blocks(ws: Path, tmp_home: Path, mock: Any, failure: str) -> None:
    script = ws / ".clinerules" / "hooks" / "PreToolUse"
    if failure == "runner-missing":
        (tmp_home / ".local" / "bin" / "modal-agent-runner").unlink()
    else:
        text = script.read_text()
        python = next(line for line in text.splitlines() if "modal_offload.hooks" in line)
        script.write_text(text.replace(python.split()[0], "/nonexistent/python"))
    results, events = run_cline(ws, tmp_home, mock, ["touch ran-anyway"])
    assert not (ws / "ran-anyway").exists(), (results, events[-2000:])
    assert results == []  # `cancel` stops the run before the command (Cline has no per-call
    # block short of rewriting)
