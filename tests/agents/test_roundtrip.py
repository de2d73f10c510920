"""install -> check -> uninstall on a workspace and a home that already hold user content."""

from __future__ import annotations

import json
from pathlib import Path

from modal_offload.install import jsonc
from tests.agents.conftest import snapshot
from tests.helpers import cli

STATE = (".local", ".cache", ".run")  # our own state and backups live there


def _lines(result: object) -> list[str]:
    out: str = result.stdout.decode()  # type: ignore[attr-defined]
    return out.splitlines()


def approve_codex_and_trust_gemini(home: Path, ws: Path, hooks_json: Path) -> None:
    """What the user does once: Codex's hook review and Gemini's folder trust, as each
    tool records them (src/modal_offload/install/hook_trust.py)."""
    config = home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    old = config.read_text() if config.exists() else ""
    project = f'[projects."{ws}"]\ntrust_level = "trusted"\n' if hooks_json.parent.parent == ws \
        else ""
    config.write_text(old + project + f'[hooks.state."{hooks_json}:pre_tool_use:0:0"]\n'
                      'trusted_hash = "sha256:00"\n')
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(ws): "TRUST_FOLDER"}))


def test_install_says_the_one_step_each_tool_needs(ws: Path, tmp_home: Path) -> None:
    first = cli("agents", "install", cwd=ws)
    assert first.returncode == 0, first.stdout + first.stderr
    todo = " ".join(line for line in _lines(first) if line.startswith("to do"))
    assert "Trust all and continue" in todo and f'"{ws}": "TRUST_FOLDER"' in todo
    check = cli("agents", "check", "--only", "hooks", cwd=ws)
    assert check.returncode != 0
    out = check.stdout.decode()
    assert "needs approval codex hook" in out and "untrusted gemini hook" in out
    assert "unverified cursor hook" in out
    approve_codex_and_trust_gemini(tmp_home, ws, ws / ".codex" / "hooks.json")
    assert cli("agents", "check", "--only", "hooks", cwd=ws).returncode == 0


def test_workspace_round_trip_is_byte_exact(ws: Path, home_with_content: Path) -> None:
    approve_codex_and_trust_gemini(home_with_content, ws, ws / ".codex" / "hooks.json")
    before_ws, before_home = snapshot(ws), snapshot(home_with_content, skip=STATE)
    first = cli("agents", "install", cwd=ws)
    assert first.returncode == 0, first.stdout + first.stderr
    again = cli("agents", "install", cwd=ws)
    assert all(line.startswith("unchanged") for line in _lines(again)), again.stdout
    check = cli("agents", "check", cwd=ws)
    assert check.returncode == 0, check.stdout
    assert all(line.startswith(("ok", "unverified cursor")) for line in _lines(check))

    # The user's content is all still there, with ours beside it.
    assert (ws / "AGENTS.md").read_text().startswith("# Team rules\n\nUse tabs.\n<!-- >>>")
    vscode = (ws / ".vscode" / "settings.json").read_text()
    assert "// editor prefs, hand-written" in vscode and "/* keep */" in vscode
    settings = jsonc.loads(vscode)
    assert settings["editor.tabSize"] == 4 and settings["geminicodeassist.agentYoloMode"] is False
    claude = jsonc.loads((ws / ".claude" / "settings.json").read_text())
    commands = [h["command"] for e in claude["hooks"]["PreToolUse"] for h in e["hooks"]]
    assert commands[0] == "lint-guard" and "modal_offload.hooks claude" in commands[1]
    gemini = json.loads((ws / ".gemini" / "settings.json").read_text())
    assert gemini["tools"] == {"sandbox": False} and gemini["hooksConfig"] == {"enabled": True}
    assert gemini["hooks"]["BeforeTool"][0]["matcher"] == "run_shell_command"
    codex = json.loads((ws / ".codex" / "hooks.json").read_text())
    assert codex["hooks"]["PreToolUse"][0]["matcher"] == "^Bash$"
    cursor = json.loads((ws / ".cursor" / "hooks.json").read_text())
    assert cursor["hooks"]["afterFileEdit"] == [{"command": "./fmt.sh"}]
    assert cursor["hooks"]["beforeShellExecution"][0]["failClosed"] is True
    assert (ws / ".clinerules" / "hooks" / "PreToolUse").stat().st_mode & 0o111
    assert (ws / ".cursor" / "rules" / "modal-offload.mdc").read_text().startswith("---\n")

    gone = cli("agents", "uninstall", cwd=ws)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert snapshot(ws) == before_ws
    assert snapshot(home_with_content, skip=STATE) == before_home


def test_user_level_hooks_round_trip(ws: Path, home_with_content: Path) -> None:
    # The user's own Codex hook is entry 0, ours will be entry 1.
    config = home_with_content / ".codex" / "config.toml"
    config.write_text(f'[hooks.state."{home_with_content / ".codex" / "hooks.json"}'
                      ':pre_tool_use:1:0"]\ntrusted_hash = "sha256:00"\n')
    before_home = snapshot(home_with_content, skip=STATE)
    assert cli("agents", "install", "--user", "--only", "hooks", cwd=ws).returncode == 0
    codex = json.loads((home_with_content / ".codex" / "hooks.json").read_text())
    assert [e["hooks"][0]["command"].split()[-1] for e in codex["hooks"]["PreToolUse"]] == \
        ["audit", "2"]  # theirs kept, ours (ending in `|| exit 2`) added
    assert (home_with_content / "Documents" / "Cline" / "Hooks" / "PreToolUse").exists()
    assert not (ws / ".claude" / "settings.json").read_text().count("modal_offload")
    assert cli("agents", "check", "--user", "--only", "hooks", cwd=ws).returncode == 0
    assert cli("agents", "uninstall", "--user", "--only", "hooks", cwd=ws).returncode == 0
    assert snapshot(home_with_content, skip=STATE) == before_home


def test_edited_after_install_only_ours_is_removed(ws: Path) -> None:
    assert cli("agents", "install", "--only", "hooks", cwd=ws).returncode == 0
    path = ws / ".claude" / "settings.json"
    text = jsonc.set_value(path.read_text(), ("model",), "sonnet")  # the user edits later
    path.write_text(text)
    assert cli("agents", "uninstall", "--only", "hooks", cwd=ws).returncode == 0
    after = jsonc.loads(path.read_text())
    assert after["model"] == "sonnet"
    assert [e["matcher"] for e in after["hooks"]["PreToolUse"]] == ["Write"]
    assert "modal_offload" not in path.read_text()


def test_check_reports_drift_and_missing(ws: Path) -> None:
    assert cli("agents", "install", "--only", "hooks", cwd=ws).returncode == 0
    path = ws / ".cursor" / "hooks.json"
    data = json.loads(path.read_text())
    data["hooks"]["beforeShellExecution"][0]["timeout"] = 1
    path.write_text(json.dumps(data))
    (ws / ".codex" / "hooks.json").unlink()
    check = cli("agents", "check", "--only", "hooks", cwd=ws)
    assert check.returncode != 0
    lines = {line.split()[1]: line.split()[0] for line in _lines(check)}
    assert lines["cursor"] == "drifted" and lines["codex"] == "missing"
    assert lines["claude"] == "ok"


def test_unparsable_settings_are_left_untouched(ws: Path) -> None:
    path = ws / ".claude" / "settings.json"
    path.write_text('{"hooks": {oops}\n')
    result = cli("agents", "install", "--only", "hooks", cwd=ws)
    assert result.returncode != 0
    assert path.read_text() == '{"hooks": {oops}\n'
    error = [line for line in _lines(result) if line.startswith("error")]
    assert len(error) == 1 and "cannot parse" in error[0]
    assert "Traceback" not in result.stderr.decode()


def test_clinerules_file_keeps_user_rules_and_says_hooks_need_the_folder(ws: Path) -> None:
    (ws / ".clinerules").write_text("- prefer small diffs\n")
    assert cli("agents", "install", "--only", "policy", cwd=ws).returncode == 0
    # Cline reads AGENTS.md as well as .clinerules: the policy is there, not twice.
    assert (ws / ".clinerules").read_text() == "- prefer small diffs\n"
    assert "modal-agent-runner" in (ws / "AGENTS.md").read_text()
    hooks = cli("agents", "install", "--only", "hooks", cwd=ws)
    assert hooks.returncode == 0
    check = cli("agents", "check", "--only", "hooks", cwd=ws)
    assert check.returncode != 0 and b"foreign   cline hook" in check.stdout
    assert cli("agents", "uninstall", cwd=ws).returncode == 0
    assert (ws / ".clinerules").read_text() == "- prefer small diffs\n"


def test_policy_edits_reach_every_mirror(ws: Path) -> None:
    assert cli("agents", "install", "--only", "policy", cwd=ws).returncode == 0
    canonical = ws / "ANTIGRAVITY.md"
    canonical.write_text(canonical.read_text() + "7. Never push on Fridays.\n")
    check = cli("agents", "check", "--only", "policy", cwd=ws)
    assert check.returncode != 0 and b"drifted   mirror AGENTS.md" in check.stdout
    assert cli("agents", "install", "--only", "policy", cwd=ws).returncode == 0
    assert not (ws / ".rules" / "codex.rules").exists()  # Codex never reads it
    for rel in ("AGENTS.md", "CLAUDE.md", "GEMINI.md", ".rules/antigravity.rules",
                ".roo/rules/modal-offload.md", ".cursor/rules/modal-offload.mdc"):
        assert "Never push on Fridays" in (ws / rel).read_text(), rel
    settings = jsonc.loads((ws / ".vscode" / "settings.json").read_text())
    assert "Never push on Fridays" in settings["geminicodeassist.rules"]
    assert cli("agents", "uninstall", cwd=ws).returncode == 0
    assert canonical.exists()  # edited by its owner: kept


def test_an_upgrade_removes_what_older_versions_installed(ws: Path) -> None:
    """Issue 7 wrote `.rules/codex.rules`, a Cline rules copy, `.gemini/.env` and a bash
    wrapper; none is read by its tool. Install removes them, leaving the user's bytes."""
    from modal_offload.install import blocks, owned

    (ws / ".gemini").mkdir(exist_ok=True)
    (ws / ".gemini" / ".env").write_text("GEMINI_MODEL=pro\n")
    before = snapshot(ws)
    blocks.install(ws / ".rules" / "codex.rules", "policy", "old policy\n", blocks.MARKDOWN)
    blocks.install(ws / ".gemini" / ".env", "policy", "PATH=/x:${PATH}\n", blocks.HASH)
    owned.write(ws / ".clinerules" / "modal-offload.md", f"<!-- {owned.MARKER} -->\nold\n")
    owned.write(ws / ".gemini" / "bin" / "bash", f"#!/bin/sh\n# {owned.MARKER}\n", 0o755)
    stale = cli("agents", "check", "--only", "policy", cwd=ws)
    assert stale.returncode != 0 and b"drifted   nothing left from older versions" in stale.stdout
    assert b".gemini/.env" in stale.stdout
    assert cli("agents", "install", cwd=ws).returncode == 0
    assert not (ws / ".rules" / "codex.rules").exists()
    assert (ws / ".gemini" / ".env").read_text() == "GEMINI_MODEL=pro\n"
    assert not (ws / ".gemini" / "bin").exists() or not any((ws / ".gemini" / "bin").iterdir())
    assert not (ws / ".clinerules" / "modal-offload.md").exists()
    assert cli("agents", "uninstall", cwd=ws).returncode == 0
    assert snapshot(ws) == before


def test_an_upgraded_gemini_settings_file_comes_back_exactly(ws: Path, tmp_home: Path) -> None:
    from modal_offload.install import hooks as hook_specs
    from modal_offload.install import jsonfile

    path = ws / ".gemini" / "settings.json"
    before = path.read_bytes()
    old = hook_specs.spec("gemini", path)
    issue7 = jsonfile.JsonSpec(path, values={("tools", "enableHooks"): True}, items=old.items,
                               ours=old.ours)
    assert jsonfile.install(issue7)
    assert cli("agents", "install", "--only", "hooks", cwd=ws).returncode == 0
    assert cli("agents", "uninstall", "--only", "hooks", cwd=ws).returncode == 0
    assert path.read_bytes() == before
