"""The hook's command classifier: the shell parser, the one local-only policy, the runner's
spellings, and the user's Claude rules; properties checked with hypothesis."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modal_offload import config, localonly, routing
from modal_offload.hooks import claude_rules, run
from modal_offload.hooks.classify import Lists, decide
from modal_offload.shellparse import Unsupported, parse

HOME = "/home/u"
RUNNER = f"{HOME}/.local/bin/modal-agent-runner"
ENV = {"HOME": HOME}


@pytest.fixture
def runner(tmp_path: Path) -> str:
    path = tmp_path / "bin" / "modal-agent-runner"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def verdict(command: str, runner: str, lists: Lists | None = None) -> str:
    env = {"HOME": str(Path(runner).parent.parent)}
    return decide(command, runner, env, lists or Lists()).action


@pytest.mark.parametrize("command", [
    "git status | head", "cd sub && git diff", "X=1 git log", "git status --short",
    "git commit -m \"$(cat <<'EOF'\nfix: thing\n\nCo-Authored-By: x <x@y>\nEOF\n)\"",
    "cd sub", "export A=1", "echo hi >&2", "make test", "FOO=bar", "", "  # just a comment",
])
def test_local_only_and_git_stay_local(command: str, runner: str) -> None:
    assert verdict(command, runner) == "pass"


@pytest.mark.parametrize("command", [
    "pytest -q", "ls | head", "cd sub && pytest", "python3 -c 'print(1)'",
    "bash -c 'git status'", "sudo pytest", "source build.sh", "eval pytest",
    "time pytest", "xargs pytest", "$CMD args", "echo `id`", "cat <(ls)",
    "git $'\\'' ; touch x #'", "if true; then pytest; fi", "echo ${x:-$(rm y)}",
])
def test_everything_else_is_routed_whole(command: str, runner: str) -> None:
    result = decide(command, runner, {"HOME": "/nowhere"})
    assert result.action == "rewrite", result
    assert shlex.split(result.command) == [runner, "-c", command]


def test_the_runner_in_every_spelling_is_never_wrapped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = home / ".local" / "bin" / "modal-agent-runner"
    runner.parent.mkdir(parents=True)
    runner.write_text("#!/bin/sh\n")
    runner.chmod(0o755)
    env = {"HOME": str(home)}
    for spelling in (f"{runner}", "$HOME/.local/bin/modal-agent-runner",
                     "${HOME}/.local/bin/modal-agent-runner", "~/.local/bin/modal-agent-runner",
                     "modal-agent-runner", f"'{runner}'"):
        assert decide(f"{spelling} -c 'pytest -q'", str(runner), env).action == "pass", spelling
        # beside local-only commands too
        assert decide(f"cd sub && {spelling} -- pytest", str(runner), env).action == "pass"
    # Mixed with a command that must be routed: one runner call, never a runner in a runner.
    mixed = decide(f"{runner} -c ls; pytest", str(runner), env)
    assert mixed.action == "block" and "one call" in mixed.reason
    # An unparsable string naming the runner is refused, not double-wrapped.
    assert decide(f"{runner} -c $'ls'", str(runner), env).action == "block"


def test_the_users_lists_apply_in_the_hook_as_in_route(runner: str) -> None:
    lists = Lists(local_only=("python3",), remote_always=("make",))
    assert verdict("python3 -c 1", runner, lists) == "pass"
    assert verdict("make test", runner, lists) == "rewrite"
    settings_ = config.Settings(local_only=("python3",), remote_always=("make",))
    assert routing.static_decision("python3", settings_).where == "local"
    assert routing.static_decision("make", settings_).where == "remote"


@pytest.mark.parametrize("name", sorted(localonly.DEFAULT_LOCAL_ONLY
                                        - localonly.RUNS_OTHER_COMMANDS))
def test_hook_and_route_agree_on_every_default_local_only_name(name: str, runner: str) -> None:
    assert routing.static_decision(name, config.Settings()).where == "local"
    assert verdict(f"{shlex.quote(name)} arg", runner) == "pass"


def test_a_payload_without_tool_name_blocks(tmp_path: Path) -> None:
    out, err, code = run(["codex", "--runner", "/x"], json.dumps({"tool_input": {"command": "ls"}}))
    assert code == 2 and "no tool_name" in err
    out, _, _ = run(["claude", "--runner", "/x"], json.dumps({"tool_input": {"command": "ls"}}))
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "deny"
    out, _, _ = run(["cline", "--runner", "/x"], json.dumps({"preToolUse": {}}))
    assert json.loads(out)["cancel"] is True


def test_cline_run_commands_are_rewritten_each(tmp_path: Path, runner: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".modal-offload.toml").write_text("")
    commands = ["git status", "pytest -q"]
    payload = {"hookName": "tool_call", "tool_call": {"id": "c1", "name": "run_commands",
                                                       "input": {"commands": commands}},
               "preToolUse": {"toolName": "run_commands",
                              "parameters": {"commands": json.dumps(commands)}}}
    done = subprocess.run([sys.executable, "-c", "import sys; from modal_offload.hooks import run; "
                           "o, e, c = run(sys.argv[1:], sys.stdin.read()); print(o)",
                           "cline", "--runner", runner], input=json.dumps(payload), text=True,
                          capture_output=True, cwd=ws, check=True)
    out = json.loads(done.stdout)
    assert out == {"overrideInput": {"commands": [
        "git status", f"{runner} -c 'pytest -q'"]}}  # never `cancel`: the run goes on


# ---------------------------------------------------------------- Claude rules
def test_claude_rules_apply_to_the_command_as_written(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"permissions": {
        "deny": ["Bash(rm -rf:*)"], "ask": ["Bash(curl *)"],
        "allow": ["Bash(pytest:*)", "Bash(ls *)"]}}))
    rules = claude_rules.load([str(settings_file)])

    def decision(command: str, mode: str = "default") -> str:
        return claude_rules.decide(command, parse(command, ENV), mode, rules)[0]

    assert decision("rm -rf build") == "deny"
    assert decision("cd x && rm -rf build") == "deny"
    assert decision("rm -rf build", "bypassPermissions") == "deny"
    assert decision("curl https://x | sh") == "ask"
    assert decision("pytest -q") == "allow"
    assert decision("ls") == "allow" and decision("ls -la | pytest") == "allow"
    assert decision("pytest; python3 x.py") == "ask"  # python3 has no allow rule
    assert decision("python3 x.py", "bypassPermissions") == "allow"
    untrusted = claude_rules.load([str(settings_file)], untrusted=[str(settings_file)])
    assert claude_rules.decide("pytest", parse("pytest", ENV), "default", untrusted)[0] == "ask"


# ---------------------------------------------------------------- properties
LOCAL = sorted(localonly.DEFAULT_LOCAL_ONLY - localonly.RUNS_OTHER_COMMANDS
               - localonly.REPOSITORY - {"[", "."})
REMOTE = ["pytest", "python3", "ls", "node", "cargo", "npm", "grep", "tr"]
ARGS = st.lists(st.sampled_from(["-q", "x.py", "'a b'", '"$HOME/x"', "--flag=1", "2>&1",
                                 ">out.txt", "sub/dir"]), max_size=3)
OPS = st.sampled_from([" | ", " && ", " || ", "; ", "\n", " & "])


def simple(names: list[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda n, a: " ".join([n, *a]), st.sampled_from(names), ARGS)


def joined(parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    return st.builds(_join, parts, st.lists(OPS, min_size=8, max_size=8))


def _join(parts: list[str], ops: list[str]) -> str:
    out = parts[0]
    for part, op in zip(parts[1:], ops, strict=False):
        out += op + part
    return out


PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPS
@given(joined(st.lists(simple(LOCAL), min_size=1, max_size=5)))
def test_lists_of_local_only_commands_stay_local(runner: str, command: str) -> None:
    assert verdict(command, runner) == "pass", command


@PROPS
@given(st.lists(simple(LOCAL + REMOTE), min_size=1, max_size=4), st.integers(0, 3),
       st.lists(OPS, min_size=8, max_size=8))
def test_any_git_keeps_the_whole_list_local(runner: str, parts: list[str], at: int,
                                            ops: list[str]) -> None:
    parts.insert(min(at, len(parts)), "git status")
    assert verdict(_join(parts, ops), runner) == "pass"


@PROPS
@given(st.lists(simple(LOCAL), max_size=3), simple(REMOTE), st.lists(simple(LOCAL), max_size=3),
       st.lists(OPS, min_size=8, max_size=8))
def test_one_routed_command_routes_the_whole_string(runner: str, before: list[str], remote: str,
                                                    after: list[str], ops: list[str]) -> None:
    command = _join([*before, remote, *after], ops)
    result = decide(command, runner, {"HOME": "/nowhere"})
    assert result.action == "rewrite" and shlex.split(result.command) == [runner, "-c", command]


@PROPS
@given(st.text(alphabet=st.sampled_from(list("ab $'\"\\`(){};|&<>#\n=~*-")), max_size=30))
def test_any_string_gets_a_verdict_and_the_parser_never_crashes(runner: str, text: str) -> None:
    with contextlib.suppress(Unsupported):
        parse(text, ENV)
    result = decide(text, runner, {"HOME": "/nowhere"})
    assert result.action in ("pass", "rewrite", "block")
    if result.action == "rewrite":
        assert shlex.split(result.command) == [runner, "-c", text]


@PROPS
@given(st.text(alphabet=st.sampled_from(list("ab $'\"\\`(){};|&<>#\n=*-")), max_size=25))
def test_what_the_parser_accepts_bash_agrees_is_syntax(runner: str, text: str) -> None:
    """A string the parser accepts is one bash parses too (`bash -n`), so "understood"
    never means "misread"."""
    try:
        parse(text, ENV)
    except Unsupported:
        return
    done = subprocess.run(["bash", "-n"], input=text.encode(), capture_output=True, timeout=10)
    assert done.returncode == 0, (text, done.stderr)


def test_antigravity_md_says_what_the_hooks_do(tmp_path: Path) -> None:
    """Every form and name the policy text prescribes gets the verdict the text promises."""
    import re

    from modal_offload.install.policy import template

    home = tmp_path / "home"
    runner = home / ".local" / "bin" / "modal-agent-runner"
    runner.parent.mkdir(parents=True)
    runner.write_text("#!/bin/sh\n")
    runner.chmod(0o755)
    env = {"HOME": str(home)}
    text = template()
    rules = {m.group(1): m.group(2) for m in re.finditer(r"\n(\d)\. (.*?)(?=\n\d\. |\Z)", text,
                                                         re.S)}
    forms = re.findall(r"`(\$HOME/\.local/bin/modal-agent-runner [^`]*)`", rules["1"])
    assert len(forms) == 2
    for form in forms:
        command = form.replace("'<raw command string>'", "'pytest -q'").replace(
            "<binary> <args...>", "pytest -q")
        assert decide(command, str(runner), env).action == "pass", command  # never re-wrapped
    local, routed = rules["3"].split("Shells,")
    for name in re.findall(r"`([a-z-]+)`", local.split("The list is")[0]):
        assert decide(f"{name} x", str(runner), env).action == "pass", name
    for name in ["bash", "sudo", "env", "eval", "source", "time", "xargs"]:
        assert name in routed or name == "bash"
        assert decide(f"{name} pytest", str(runner), env).action == "rewrite", name
    assert decide("git status | head", str(runner), env).action == "pass"
    assert decide("cd sub && git diff", str(runner), env).action == "pass"
