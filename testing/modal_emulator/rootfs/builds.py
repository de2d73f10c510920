"""Image builds in rootfs mode: ImageGetOrCreate starts one, ImageJoinStreaming streams its log.

The client's side (modal/_image.py ~850-895): a response to ImageGetOrCreate with a result
status is a finished build (`_cache_hit`); without one the client calls ImageJoinStreaming
(`_image_await_build_result`, ~535), printing each `task_logs` entry when output is enabled
(`modal.enable_output()`), resuming from `last_entry_id` and re-joining when a stream ends
without a result. A result with GENERIC_STATUS_FAILURE becomes `modal.exception.ImageBuildError`
(a `RemoteError`): "Image build for im-... failed with the exception:\\n<exception>" when the
result carries an exception, else "Image build for im-... failed.\\nView the build logs: ...".
A failing RUN is reported the second way, with the reason in the build log as Modal prints it
("Terminating task due to error: failed to run builder command ..."); instructions the emulator
cannot build (another base image, unsupported Dockerfile syntax) carry a one-line exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from modal_proto import api_pb2

from ..objects import ImageRecord, ObjectStore
from .base import parse_from
from .dockerfile import DockerfileError, instructions, words
from .layers import BuildContext, LayerBuilder, LayerState, StepFailed

GenericResult = api_pb2.GenericResult


@dataclass
class ImageBuild:
    image_id: str
    entries: list[api_pb2.TaskLogs] = field(default_factory=list)
    result: api_pb2.GenericResult | None = None
    state: LayerState | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def log(self, text: str) -> None:
        if text:
            self.entries.append(
                api_pb2.TaskLogs(
                    data=text,
                    file_descriptor=api_pb2.FILE_DESCRIPTOR_STDOUT,
                    timestamp=time.time(),
                )
            )
            self._wake()

    def finish(self, result: api_pb2.GenericResult, state: LayerState | None) -> None:
        self.result = result
        self.state = state
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class ImageBuilds:
    """Every image's build in this emulator (they survive resets, like image ids)."""

    def __init__(self, objects: ObjectStore, builder: LayerBuilder) -> None:
        self.objects = objects
        self.builder = builder
        self.builds: dict[str, ImageBuild] = {}
        self.definitions: dict[str, api_pb2.Image] = {}

    def request(
        self, image: ImageRecord, definition: api_pb2.Image
    ) -> api_pb2.GenericResult | None:
        """Start the image's build unless it is built or building; its result if finished.

        A failed build is retried on the next request, as Modal does not cache failures.
        """
        self.definitions.setdefault(image.image_id, definition)
        build = self.builds.get(image.image_id)
        if build is not None and (build.result is None or build.state is not None):
            return build.result
        build = ImageBuild(image.image_id)
        self.builds[image.image_id] = build
        build.task = asyncio.create_task(self._build(build))
        return None

    async def state(self, image_id: str) -> LayerState:
        """The built image, waiting for a build in progress; raises LookupError if unusable."""
        build = self.builds.get(image_id)
        if build is None:
            raise LookupError(f"Image {image_id} was never built by this emulator")
        while build.result is None:
            await build.changed.wait()
        if build.state is None:
            raise LookupError(f"Image {image_id} failed to build")
        return build.state

    async def join(
        self, image_id: str, last_entry_id: str, timeout: float
    ) -> list[api_pb2.ImageJoinStreamingResponse]:
        """Responses past `last_entry_id` (waiting up to `timeout` for any); the last one has
        the result and `eof` once the build is over."""
        build = self.builds[image_id]
        start = int(last_entry_id) if last_entry_id.isdigit() else 0
        if start >= len(build.entries) and build.result is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(build.changed.wait(), timeout)
        out = []
        if start < len(build.entries):
            end = len(build.entries)
            out.append(
                api_pb2.ImageJoinStreamingResponse(
                    task_logs=build.entries[start:end], entry_id=str(end)
                )
            )
            start = end
        if build.result is not None and start >= len(build.entries):
            final = api_pb2.ImageJoinStreamingResponse(result=build.result, eof=True)
            final.metadata.CopyFrom(self.metadata(image_id))
            out.append(final)
        return out

    def metadata(self, image_id: str) -> api_pb2.ImageMetadata:
        build = self.builds.get(image_id)
        metadata = api_pb2.ImageMetadata()
        if build is not None and build.state is not None:
            metadata.python_version_info = f"Python {build.state.python_version}"
            if build.state.workdir != "/":
                metadata.workdir = build.state.workdir
        return metadata

    async def _build(self, build: ImageBuild) -> None:
        started = time.monotonic()
        await build.log(f"Building image {build.image_id}\n")
        try:
            state = await self._layers(build)
        except StepFailed as exc:
            await build.log(f"\nTerminating task due to error: {exc}\n")
            build.finish(GenericResult(status=GenericResult.GENERIC_STATUS_FAILURE), None)
            return
        except (DockerfileError, LookupError) as exc:
            await build.log(f"\n{exc}\n")
            build.finish(
                GenericResult(status=GenericResult.GENERIC_STATUS_FAILURE, exception=str(exc)),
                None,
            )
            return
        except Exception as exc:  # a bug here must fail the build, not hang the client
            message = f"modal emulator (rootfs): internal error while building: {exc!r}"
            await build.log(f"\n{message}\n")
            build.finish(
                GenericResult(status=GenericResult.GENERIC_STATUS_FAILURE, exception=message),
                None,
            )
            return
        await build.log(f"\nBuilt image {build.image_id} in {time.monotonic() - started:.2f}s\n")
        build.finish(GenericResult(status=GenericResult.GENERIC_STATUS_SUCCESS), state)

    async def _layers(self, build: ImageBuild) -> LayerState:
        image = self.objects.images[build.image_id]
        definition = self.definitions[build.image_id]
        base: LayerState | None = None
        for base_id in image.base_image_ids:
            base = await self.state(base_id)
        context = self._context(definition)
        build_env = self._secret_env(definition)
        state: LayerState | None = None
        for step, instr in enumerate(instructions(image.dockerfile_commands)):
            await build.log(f"\n=> Step {step}: {instr.text}\n")
            if instr.keyword == "FROM":
                ref = words(instr.rest, {})[0] if instr.rest else ""
                if ref == "base":
                    if base is None:
                        raise DockerfileError("FROM base without a base image")
                    state = base
                else:
                    state = await self.builder.base(parse_from(ref), build.log)
                continue
            if state is None:
                raise DockerfileError(f"the first instruction must be FROM, got {instr.text!r}")
            state = await self.builder.apply(state, instr, context, build_env, build.log)
        if state is None:
            raise DockerfileError("the image has no FROM instruction")
        return state

    def _context(self, definition: api_pb2.Image) -> BuildContext:
        context = BuildContext()
        if definition.context_mount_id:
            mount = self.objects.mounts.get(definition.context_mount_id)
            if mount is None:
                raise LookupError(f"Context mount {definition.context_mount_id} not found")
            for f in mount.files:
                mode = f.mode & 0o7777 if f.HasField("mode") else 0o644
                context.files[f.filename.lstrip("/")] = (
                    self.objects.file_contents[f.sha256_hex],
                    mode,
                )
        for cf in definition.context_files:
            context.files[cf.filename.lstrip("/")] = (cf.data, 0o644)
        return context

    def _secret_env(self, definition: api_pb2.Image) -> dict[str, str]:
        env: dict[str, str] = {}
        for secret_id in definition.secret_ids:
            secret = self.objects.secrets.get(secret_id)
            if secret is None:
                raise LookupError(f"Secret {secret_id} not found")
            env.update(secret.env)
        return env
