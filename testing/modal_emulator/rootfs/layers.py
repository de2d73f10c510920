"""Image layers, built for real and cached by content like Modal's.

A layer's id is the digest of (parent layer id, instruction text, and for COPY the build
context's files), so the same instruction on the same parent is built once per machine. RUN
runs `/bin/sh -c` inside the parent's root (an overlay whose upper dir becomes the layer);
COPY and WORKDIR place files from inside the root too (so symlinks such as /bin -> usr/bin
resolve as in a container); ENV, CMD and the like only change the image state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import base as base_image
from .cache import LayerCache
from .dockerfile import DockerfileError, Instruction, env_pairs, exec_form, words
from .uv import binary_from as uv_binary_from
from .uv import download_argv as uv_download_argv
from .uv import scratch_dir as uv_scratch_dir
from .uv import uv_tag

NSINIT = str(Path(__file__).with_name("nsinit.py"))
# Files of this machine every container needs to reach PyPI and Debian here: the resolver and
# the CA bundle (which holds the intercepting proxy's CA on CI). Bound over the container's own
# copies at run time, never stored in a layer.
HOST_RESOLV = "/etc/resolv.conf"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONTAINER_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

LogFn = Callable[[str], Awaitable[None]]


class StepFailed(Exception):
    """A RUN step exited non-zero (Modal: the build fails, the logs say why)."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(f'failed to run builder command "{text}": container exit status: {code}')
        self.code = code


@dataclass(frozen=True)
class LayerState:
    """The image as of one layer: what a sandbox or the next step starts from."""

    layer_id: str
    env: tuple[tuple[str, str], ...]
    workdir: str
    cmd: tuple[str, ...] | None
    lowers: tuple[str, ...]  # ids of layers with files, topmost first
    python_version: str

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_meta(self) -> dict[str, Any]:
        return {
            "id": self.layer_id,
            "env": [list(p) for p in self.env],
            "workdir": self.workdir,
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "lowers": list(self.lowers),
            "python_version": self.python_version,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> LayerState:
        return cls(
            layer_id=meta["id"],
            env=tuple((k, v) for k, v in meta["env"]),
            workdir=meta["workdir"],
            cmd=tuple(meta["cmd"]) if meta["cmd"] is not None else None,
            lowers=tuple(meta["lowers"]),
            python_version=meta["python_version"],
        )


@dataclass
class BuildContext:
    """Files a COPY may read: the image's context files and its context mount, by relative path."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            data, mode = self.files[name]
            h.update(f"{name}\0{mode}\0{hashlib.sha256(data).hexdigest()}\n".encode())
        return h.hexdigest()

    def select(self, sources: list[str], dest: str) -> dict[str, tuple[bytes, int]]:
        """Docker's COPY rules: container path -> file, for `COPY sources... dest`."""
        out: dict[str, tuple[bytes, int]] = {}
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            src = posixpath.normpath(source.lstrip("/") or ".")
            if src == ".":
                for name, data in self.files.items():
                    out[posixpath.join(dest, name)] = data
            elif src in self.files:
                target = posixpath.join(dest, posixpath.basename(src)) if into_dir else dest
                out[target] = self.files[src]
            elif any(name.startswith(src + "/") for name in self.files):
                for name, data in self.files.items():
                    if name.startswith(src + "/"):
                        out[posixpath.join(dest, name[len(src) + 1 :])] = data
            elif any(ch in src for ch in "*?["):
                matched = [n for n in self.files if fnmatch.fnmatchcase(n, src)]
                if not matched:
                    raise DockerfileError(f"COPY failed: no source files were specified: {source}")
                for name in matched:
                    out[posixpath.join(dest, posixpath.basename(name))] = self.files[name]
            else:
                raise DockerfileError(f"COPY failed: file not found in build context: {source}")
        return out


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def nsinit_argv(config: Mapping[str, Any]) -> list[str]:
    """unshare(1) gives the container its own mount and pid namespaces (propagation private by
    default since util-linux 2.27); nsinit.py is its pid 1."""
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        sys.executable,
        "-I",
        "-S",
        NSINIT,
        json.dumps(dict(config)),
    ]


def host_binds(scratch: Path) -> list[list[object]]:
    """Bind mounts for this machine's network settings; the CA bundle is a per-container copy so
    a container may rewrite it without touching the host's."""
    binds: list[list[object]] = []
    if os.path.exists(HOST_RESOLV):
        binds.append([HOST_RESOLV, "/etc/resolv.conf", True])
    if os.path.exists(HOST_CA_BUNDLE):
        copy = scratch / "ca-certificates.crt"
        shutil.copyfile(HOST_CA_BUNDLE, copy)
        binds.append([str(copy), CONTAINER_CA_BUNDLE, False])
    return binds


# Tools with their own CA roots (uv) must trust the bound bundle too, or nothing reaches PyPI
# through an intercepting proxy. The one variable the emulator adds that Modal does not.
NETWORK_ENV = {"SSL_CERT_FILE": CONTAINER_CA_BUNDLE}


def container_env(state: LayerState, *overlays: Mapping[str, str]) -> dict[str, str]:
    """HOME=/root (Modal runs as root) and NETWORK_ENV, image ENV, then `overlays`."""
    env = {"HOME": "/root", **NETWORK_ENV}
    env.update(state.env_dict())
    for extra in overlays:
        env.update(extra)
    return env


class LayerBuilder:
    """Builds and caches layers. Runs on the emulator loop; the heavy work is in subprocesses."""

    def __init__(self, cache: LayerCache) -> None:
        self.cache = cache
        # Instructions this process really executed (not served from the cache), for tests.
        self.steps_run: list[str] = []

    # ---------------------------------------------------------------------------------- base

    async def base(self, spec: base_image.BaseSpec, log: LogFn) -> LayerState:
        layer_id = spec.layer_id

        async def build(staged: Path) -> LayerState:
            await log(
                f"Building the Debian {spec.codename} root with mmdebstrap (once per machine)\n"
            )
            root = staged / "diff"
            await self._stream([*spec.mmdebstrap_argv(str(root))], log, "mmdebstrap")
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
            await self._stream(
                ["chroot", str(root), "/bin/sh", "-c", base_image.CUSTOMIZE], log, "base setup", env
            )
            version = (root / ".modal-emulator-python").read_text().strip()
            (root / ".modal-emulator-python").unlink()
            return LayerState(
                layer_id=layer_id,
                env=(("PATH", base_image.PATH), ("LANG", "C.UTF-8"), ("PYTHON_VERSION", version)),
                workdir="/",
                cmd=("python3",),
                lowers=(layer_id,),
                python_version=version,
            )

        return await self._materialize(
            layer_id, f"FROM python:{spec.series}-slim-{spec.codename}", log, build
        )

    # ---------------------------------------------------------------------------------- steps

    async def apply(
        self,
        parent: LayerState,
        instr: Instruction,
        context: BuildContext,
        build_env: Mapping[str, str],
        log: LogFn,
    ) -> LayerState:
        env = parent.env_dict()
        kw = instr.keyword
        if kw == "ENV":
            for key, value in env_pairs(instr.rest, env):
                env[key] = value
            return replace(
                parent, layer_id=_digest(parent.layer_id, instr.text), env=tuple(env.items())
            )
        if kw in ("CMD", "ENTRYPOINT"):
            cmd = exec_form(instr.rest) or ["/bin/sh", "-c", instr.rest]
            return replace(parent, layer_id=_digest(parent.layer_id, instr.text), cmd=tuple(cmd))
        if kw in ("LABEL", "EXPOSE"):
            return replace(parent, layer_id=_digest(parent.layer_id, instr.text))
        if kw == "WORKDIR":
            args = words(instr.rest, env)
            if len(args) != 1:
                raise DockerfileError(f"WORKDIR takes one path, got {instr.rest!r}")
            workdir = posixpath.normpath(posixpath.join(parent.workdir, args[0]))
            layer_id = _digest(parent.layer_id, instr.text)

            async def directory() -> Mapping[str, tuple[bytes, int] | None]:
                return {workdir: None}

            state = await self._copy_step(parent, layer_id, instr, directory, log)
            return replace(state, workdir=workdir)
        if kw in ("COPY", "ADD"):
            args = words(instr.rest, env)
            flags = [a for a in args if a.startswith("--")]
            args = [a for a in args if not a.startswith("--")]
            if len(args) < 2:
                raise DockerfileError(f"{kw} needs a source and a destination: {instr.text!r}")
            dest = args[-1]
            if not dest.startswith("/"):
                dest = posixpath.join(parent.workdir, dest) + ("/" if dest.endswith("/") else "")
            tag = uv_tag(flags[0]) if len(flags) == 1 else None
            if tag is not None and args[:-1] == ["/uv"]:
                layer_id = _digest(parent.layer_id, instr.text)
                return await self._copy_step(
                    parent, layer_id, instr, lambda: self._uv_binary(tag, dest, log), log
                )
            if flags:
                raise DockerfileError(
                    f"modal emulator (rootfs) does not support {kw} {' '.join(flags)}"
                )
            files: dict[str, tuple[bytes, int] | None] = dict(context.select(args[:-1], dest))
            layer_id = _digest(parent.layer_id, instr.text, context.digest())

            async def selected() -> Mapping[str, tuple[bytes, int] | None]:
                return files

            return await self._copy_step(parent, layer_id, instr, selected, log)
        if kw == "RUN":
            argv = exec_form(instr.rest) or ["/bin/sh", "-c", instr.rest]
            layer_id = _digest(parent.layer_id, instr.text)

            async def run(staged: Path) -> LayerState:
                code = await self._in_container(
                    parent, staged, {"argv": argv, "env": container_env(parent, build_env)}, log
                )
                if code != 0:
                    raise StepFailed(instr.rest, code)
                return self._child_state(parent, layer_id, staged)

            return await self._materialize(layer_id, instr.text, log, run)
        raise DockerfileError(f"modal emulator (rootfs) does not support the {kw} instruction")

    async def _copy_step(
        self,
        parent: LayerState,
        layer_id: str,
        instr: Instruction,
        files: Callable[[], Awaitable[Mapping[str, tuple[bytes, int] | None]]],
        log: LogFn,
    ) -> LayerState:
        """Place `files()` (None: a directory) into the root from inside the container."""

        async def copy(staged: Path) -> LayerState:
            payload = staged / "payload"
            payload.mkdir()
            for path, data in (await files()).items():
                target = payload / posixpath.normpath(path).lstrip("/")
                if data is None:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[0])
                target.chmod(data[1])
            code = await self._in_container(
                parent, staged, {"copy_from": str(payload), "env": {}}, log
            )
            if code != 0:
                raise StepFailed(instr.rest, code)
            return self._child_state(parent, layer_id, staged)

        return await self._materialize(layer_id, instr.text, log, copy)

    async def _uv_binary(
        self, tag: str, dest: str, log: LogFn
    ) -> Mapping[str, tuple[bytes, int] | None]:
        with uv_scratch_dir() as tmp:
            await log(f"Fetching uv {tag} from PyPI (the binary of ghcr.io/astral-sh/uv:{tag})\n")
            await self._stream(uv_download_argv(tag, Path(tmp)), log, "pip download uv")
            return {dest: (uv_binary_from(Path(tmp)), 0o755)}

    def _child_state(self, parent: LayerState, layer_id: str, staged: Path) -> LayerState:
        has_files = any((staged / "diff").iterdir())
        lowers = (layer_id, *parent.lowers) if has_files else parent.lowers
        return replace(parent, layer_id=layer_id, lowers=lowers)

    async def _in_container(
        self, parent: LayerState, staged: Path, extra: Mapping[str, Any], log: LogFn
    ) -> int:
        for name in ("work", "merged"):
            (staged / name).mkdir()
        config = {
            "mode": "run",
            "layers_dir": str(self.cache.layers),
            "lowers": [f"{lid}/diff" for lid in parent.lowers],
            "upper": str(staged / "diff"),
            "work": str(staged / "work"),
            "merged": str(staged / "merged"),
            "binds": host_binds(staged),
            "cwd": parent.workdir,
            **extra,
        }
        return await self._stream(nsinit_argv(config), log, None)

    # ---------------------------------------------------------------------------------- plumbing

    async def _materialize(
        self,
        layer_id: str,
        text: str,
        log: LogFn,
        build: Callable[[Path], Awaitable[LayerState]],
    ) -> LayerState:
        """The cached layer, or build it under the layer's lock and publish it."""
        meta = self.cache.meta(layer_id)
        if meta is not None:
            return LayerState.from_meta(meta)
        async with self._lock(layer_id, log):
            meta = self.cache.meta(layer_id)  # built by another process while we waited
            if meta is not None:
                return LayerState.from_meta(meta)
            staged = self.cache.staging(layer_id)
            try:
                state = await build(staged)
                for name in ("work", "merged", "payload", "ca-certificates.crt"):
                    path = staged / name
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
                # "command": for a person looking into the cache; never read back.
                self.cache.publish(layer_id, staged, {**state.to_meta(), "command": text})
            except BaseException:
                self.cache.discard(staged)
                raise
        self.steps_run.append(text)
        return state

    @contextlib.asynccontextmanager
    async def _lock(self, layer_id: str, log: LogFn) -> AsyncIterator[None]:
        if self.cache.is_locked(layer_id):
            await log(f"Waiting for another builder of layer {layer_id}\n")
        manager = self.cache.locked(layer_id)
        await asyncio.to_thread(manager.__enter__)
        try:
            yield
        finally:
            manager.__exit__(None, None, None)

    async def _stream(
        self, argv: list[str], log: LogFn, label: str | None, env: Mapping[str, str] | None = None
    ) -> int:
        """Run `argv`, output streamed to the build log; raise if `label` is set and it fails."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(65536):
                await log(chunk.decode(errors="replace"))
            code = await proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
            raise
        if label is not None and code != 0:
            raise DockerfileError(
                f"modal emulator (rootfs): {label} failed with exit status {code}"
            )
        return code
