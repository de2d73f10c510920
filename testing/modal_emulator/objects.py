"""Non-sandbox Modal objects the client creates on the way to a sandbox.

Apps, environments, images, mounts, secrets and blobs are bookkeeping only: in host mode images
"build" instantly (nothing is installed; sandbox processes use the emulator's own interpreter;
image mode rootfs builds them for real, see rootfs/), mounts
keep their file contents so they can be copied into a sandbox's scratch filesystem.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import time
from dataclasses import dataclass, field

from modal_proto import api_pb2

from . import ids


@functools.cache
def image_builder_version() -> str:
    """Builder version reported to the client; it must be one the client supports.

    Prefer the client's own "latest", so a new release that drops old versions keeps working.
    Imported lazily: importing `modal` reads its config file, which must not happen before a
    test or script has pointed MODAL_CONFIG_PATH somewhere safe.
    """
    try:
        from modal._image import LATEST_IMAGE_BUILDER_VERSION
    except ImportError:  # pragma: no cover - depends on the installed client
        return "2025.06"
    return str(LATEST_IMAGE_BUILDER_VERSION)


DEFAULT_ENVIRONMENT = "main"


@dataclass
class AppRecord:
    app_id: str
    name: str
    environment_name: str
    created_at: float


@dataclass
class ImageRecord:
    image_id: str
    dockerfile_commands: list[str]
    base_image_ids: list[str]
    context_mount_id: str
    builder_version: str
    workdir: str | None  # effective WORKDIR, inherited from base images


@dataclass
class MountRecord:
    mount_id: str
    files: list[api_pb2.MountFile]


@dataclass
class SecretRecord:
    secret_id: str
    name: str | None
    env: dict[str, str]


@dataclass
class ObjectStore:
    apps: dict[str, AppRecord] = field(default_factory=dict)  # by app_id
    images: dict[str, ImageRecord] = field(default_factory=dict)
    mounts: dict[str, MountRecord] = field(default_factory=dict)
    secrets: dict[str, SecretRecord] = field(default_factory=dict)
    file_contents: dict[str, bytes] = field(default_factory=dict)  # mount file data by sha256 hex
    blobs: dict[str, bytes] = field(default_factory=dict)
    environment_id: str = field(default_factory=lambda: ids.new_id("en"))
    _image_ids_by_digest: dict[str, str] = field(default_factory=dict)

    # --------------------------------------------------------------------------- apps

    def app_by_name(self, name: str, environment_name: str) -> AppRecord | None:
        env = environment_name or DEFAULT_ENVIRONMENT
        for app in self.apps.values():
            if app.name == name and app.environment_name == env:
                return app
        return None

    def create_app(self, name: str, environment_name: str) -> AppRecord:
        app = AppRecord(
            app_id=ids.new_id("ap"),
            name=name,
            environment_name=environment_name or DEFAULT_ENVIRONMENT,
            created_at=time.time(),
        )
        self.apps[app.app_id] = app
        return app

    # --------------------------------------------------------------------------- images

    def get_or_create_image(self, req: api_pb2.ImageGetOrCreateRequest) -> ImageRecord:
        """Content-address images like Modal does: the same definition yields the same id."""
        digest = hashlib.sha256(
            req.image.SerializeToString(deterministic=True) + req.builder_version.encode()
        ).hexdigest()
        existing = self._image_ids_by_digest.get(digest)
        if existing is not None and existing in self.images:
            return self.images[existing]
        base_ids = [b.image_id for b in req.image.base_images]
        workdir = None
        for base_id in base_ids:
            base = self.images.get(base_id)
            if base is not None and base.workdir:
                workdir = base.workdir
        for command in req.image.dockerfile_commands:
            parts = shlex.split(command) if command.strip().upper().startswith("WORKDIR") else []
            if len(parts) == 2:
                workdir = parts[1]
        image = ImageRecord(
            image_id=ids.new_id("im"),
            dockerfile_commands=list(req.image.dockerfile_commands),
            base_image_ids=base_ids,
            context_mount_id=req.image.context_mount_id,
            builder_version=req.builder_version or image_builder_version(),
            workdir=workdir,
        )
        self.images[image.image_id] = image
        self._image_ids_by_digest[digest] = image.image_id
        return image

    def image_chain(self, image_id: str) -> list[ImageRecord]:
        """The image and its ancestors, base first."""
        chain: list[ImageRecord] = []
        pending = [image_id]
        seen: set[str] = set()
        while pending:
            current = pending.pop()
            if current in seen or current not in self.images:
                continue
            seen.add(current)
            image = self.images[current]
            chain.append(image)
            pending.extend(image.base_image_ids)
        return list(reversed(chain))

    # --------------------------------------------------------------------------- mounts

    def create_mount(self, files: list[api_pb2.MountFile]) -> MountRecord:
        mount = MountRecord(mount_id=ids.new_id("mo"), files=list(files))
        self.mounts[mount.mount_id] = mount
        return mount

    # --------------------------------------------------------------------------- secrets

    def secret_by_name(self, name: str) -> SecretRecord | None:
        for secret in self.secrets.values():
            if secret.name == name:
                return secret
        return None

    def create_secret(self, name: str | None, env: dict[str, str]) -> SecretRecord:
        secret = SecretRecord(secret_id=ids.new_id("st"), name=name, env=dict(env))
        self.secrets[secret.secret_id] = secret
        return secret

    def resolve_secret_sources(
        self, sources: list[api_pb2.SecretSource], secret_ids: list[str]
    ) -> tuple[dict[str, str], list[str]]:
        """Env from inline sources and secrets referenced by id, in order; plus the ids used.

        Raises KeyError for an unknown secret id.
        """
        env: dict[str, str] = {}
        used_ids: list[str] = []
        for secret_id in secret_ids:
            env.update(self.secrets[secret_id].env)
            used_ids.append(secret_id)
        for source in sources:
            if source.HasField("env"):
                env.update(dict(source.env.contents))
            elif source.secret_id:
                env.update(self.secrets[source.secret_id].env)
                used_ids.append(source.secret_id)
        return env, used_ids
