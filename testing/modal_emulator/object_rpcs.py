"""Control-plane RPCs for the objects a sandbox depends on: environment, apps, images, mounts,
blobs and secrets. Mixed into `ControlPlaneServicer`; they keep records (see objects.py), and in
image mode rootfs hand image builds to `rootfs/builds.py`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NoReturn

from google.protobuf.timestamp_pb2 import Timestamp
from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import api_pb2

from . import ids
from .objects import DEFAULT_ENVIRONMENT, ObjectStore

if TYPE_CHECKING:
    from .server import ModalEmulator

GenericResult = api_pb2.GenericResult


def _abort(status: Status, message: str) -> NoReturn:
    raise GRPCError(status, message)


def _success() -> api_pb2.GenericResult:
    return GenericResult(status=GenericResult.GENERIC_STATUS_SUCCESS)


class ObjectRpcs:
    emu: ModalEmulator
    objects: ObjectStore

    # ------------------------------------------------------------------ environment and apps

    async def EnvironmentGetOrCreate(
        self,
        stream: Stream[
            api_pb2.EnvironmentGetOrCreateRequest, api_pb2.EnvironmentGetOrCreateResponse
        ],
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        await stream.send_message(
            api_pb2.EnvironmentGetOrCreateResponse(
                environment_id=self.objects.environment_id,
                metadata=api_pb2.EnvironmentMetadata(
                    name=req.deployment_name or DEFAULT_ENVIRONMENT,
                    settings=api_pb2.EnvironmentSettings(
                        image_builder_version=self.emu.image_builder_version
                    ),
                ),
            )
        )

    async def AppGetOrCreate(
        self, stream: Stream[api_pb2.AppGetOrCreateRequest, api_pb2.AppGetOrCreateResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        app = self.objects.app_by_name(req.app_name, req.environment_name)
        if app is None:
            if req.object_creation_type != api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                _abort(Status.NOT_FOUND, f"App '{req.app_name}' not found")
            app = self.objects.create_app(req.app_name, req.environment_name)
        await stream.send_message(
            api_pb2.AppGetOrCreateResponse(
                app_id=app.app_id,
                handle_metadata=api_pb2.AppHandleMetadata(
                    app_id=app.app_id, environment_name=app.environment_name, description=app.name
                ),
            )
        )

    # ------------------------------------------------------------------ images

    async def ImageGetOrCreate(
        self, stream: Stream[api_pb2.ImageGetOrCreateRequest, api_pb2.ImageGetOrCreateResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        image = self.objects.get_or_create_image(req)
        if self.emu.faults.image_build_delay > 0:
            await asyncio.sleep(self.emu.faults.image_build_delay)  # fault: a slow first build
        if self.emu.rootfs is not None:
            # A real build: a finished one answers now, else the client joins its log stream.
            result = self.emu.rootfs.builds.request(image, req.image)
            resp = api_pb2.ImageGetOrCreateResponse(image_id=image.image_id)
            if result is not None:
                resp.result.CopyFrom(result)
                resp.metadata.CopyFrom(self._image_metadata(image.image_id))
            await stream.send_message(resp)
            return
        # Report a finished build straight away, so the client never needs ImageJoinStreaming.
        await stream.send_message(
            api_pb2.ImageGetOrCreateResponse(
                image_id=image.image_id,
                result=_success(),
                metadata=self._image_metadata(image.image_id),
            )
        )

    async def ImageJoinStreaming(
        self, stream: Stream[api_pb2.ImageJoinStreamingRequest, api_pb2.ImageJoinStreamingResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        if req.image_id not in self.objects.images:
            _abort(Status.NOT_FOUND, f"Image {req.image_id} not found")
        if self.emu.rootfs is not None and req.image_id in self.emu.rootfs.builds.builds:
            await self._join_build(stream, req)
            return
        await stream.send_message(
            api_pb2.ImageJoinStreamingResponse(
                result=_success(), eof=True, metadata=self._image_metadata(req.image_id)
            )
        )

    async def _join_build(
        self,
        stream: Stream[api_pb2.ImageJoinStreamingRequest, api_pb2.ImageJoinStreamingResponse],
        req: api_pb2.ImageJoinStreamingRequest,
    ) -> None:
        """Stream the build log from `last_entry_id`; end with the result, or after the
        client's `timeout` (it then joins again)."""
        assert self.emu.rootfs is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (req.timeout or 55.0)
        last = req.last_entry_id
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            for resp in await self.emu.rootfs.builds.join(req.image_id, last, remaining):
                await stream.send_message(resp)
                if resp.entry_id:
                    last = resp.entry_id
                if resp.eof:
                    return

    async def ImageFromId(
        self, stream: Stream[api_pb2.ImageFromIdRequest, api_pb2.ImageFromIdResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        if req.image_id not in self.objects.images:
            _abort(Status.NOT_FOUND, f"Image {req.image_id} not found")
        await stream.send_message(
            api_pb2.ImageFromIdResponse(
                image_id=req.image_id, metadata=self._image_metadata(req.image_id)
            )
        )

    def _image_metadata(self, image_id: str) -> api_pb2.ImageMetadata:
        image = self.objects.images.get(image_id)
        metadata = api_pb2.ImageMetadata(image_builder_version=self.emu.image_builder_version)
        if self.emu.rootfs is not None:
            metadata.MergeFrom(
                self.emu.rootfs.builds.metadata(self.emu.snapshots.base_of(image_id)))
        if image is not None and image.workdir:
            metadata.workdir = image.workdir
        return metadata

    # ------------------------------------------------------------------ mounts and blobs

    async def MountBatchedCheckExistence(
        self,
        stream: Stream[
            api_pb2.MountBatchedCheckExistenceRequest, api_pb2.MountBatchedCheckExistenceResponse
        ],
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        missing = [h for h in req.sha256_hex_hashes if h not in self.objects.file_contents]
        checked_at = Timestamp()
        checked_at.GetCurrentTime()
        await stream.send_message(
            api_pb2.MountBatchedCheckExistenceResponse(
                missing_sha256_hex_hashes=missing, checked_at=checked_at
            )
        )

    async def MountPutFile(
        self, stream: Stream[api_pb2.MountPutFileRequest, api_pb2.MountPutFileResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        if req.WhichOneof("data_oneof") == "data_blob_id":
            data = self.objects.blobs.get(req.data_blob_id)
            if data is None:
                _abort(Status.NOT_FOUND, f"Blob {req.data_blob_id} not found")
        elif req.WhichOneof("data_oneof") == "data":
            data = req.data
        else:
            # A bare hash is an existence check.
            await stream.send_message(
                api_pb2.MountPutFileResponse(exists=req.sha256_hex in self.objects.file_contents)
            )
            return
        self.objects.file_contents[req.sha256_hex] = data
        await stream.send_message(api_pb2.MountPutFileResponse(exists=True))

    async def MountGetOrCreate(
        self, stream: Stream[api_pb2.MountGetOrCreateRequest, api_pb2.MountGetOrCreateResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        missing = [f.filename for f in req.files if f.sha256_hex not in self.objects.file_contents]
        if missing:
            _abort(Status.FAILED_PRECONDITION, f"Mount files were never uploaded: {missing[:5]}")
        mount = self.objects.create_mount(list(req.files))
        await stream.send_message(
            api_pb2.MountGetOrCreateResponse(
                mount_id=mount.mount_id, handle_metadata=api_pb2.MountHandleMetadata()
            )
        )

    async def BlobCreate(
        self, stream: Stream[api_pb2.BlobCreateRequest, api_pb2.BlobCreateResponse]
    ) -> None:
        await stream.recv_message()
        blob_id = ids.new_id("bl")
        # Large files go through an HTTP PUT, like S3; see blobs.py.
        await stream.send_message(
            api_pb2.BlobCreateResponse(
                blob_ids=[blob_id],
                upload_urls=api_pb2.UploadUrlList(items=[self.emu.blob_url(blob_id)]),
            )
        )

    async def BlobGet(
        self, stream: Stream[api_pb2.BlobGetRequest, api_pb2.BlobGetResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        if req.blob_id not in self.objects.blobs:
            _abort(Status.NOT_FOUND, f"Blob {req.blob_id} not found")
        await stream.send_message(
            api_pb2.BlobGetResponse(download_url=self.emu.blob_url(req.blob_id))
        )

    # ------------------------------------------------------------------ secrets

    async def SecretGetOrCreate(
        self, stream: Stream[api_pb2.SecretGetOrCreateRequest, api_pb2.SecretGetOrCreateResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        env = dict(req.env_dict)
        name = req.deployment_name or None
        secret = self.objects.secret_by_name(name) if name else None
        if secret is None:
            if (
                name
                and not env
                and req.object_creation_type == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED
            ):
                _abort(
                    Status.NOT_FOUND,
                    f"Secret '{name}' not found (register it with emulator.add_secret)",
                )
            secret = self.objects.create_secret(name, env)
        elif (
            env
            and req.object_creation_type == api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS
        ):
            secret.env = env
        missing = [k for k in req.required_keys if k not in secret.env]
        if missing:
            _abort(Status.NOT_FOUND, f"Secret is missing required keys: {missing}")
        await stream.send_message(
            api_pb2.SecretGetOrCreateResponse(
                secret_id=secret.secret_id,
                metadata=api_pb2.SecretMetadata(name=secret.name or "", keys=sorted(secret.env)),
            )
        )
