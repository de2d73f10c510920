"""Which environment variables configure the `modal` client.

Tests must drop these (a developer's MODAL_PROFILE or MODAL_ENVIRONMENT would leak into the
client) but keep the project's own variables that merely share the prefix (MODAL_OFFLOAD_*).
"""

from __future__ import annotations

import sys

# modal 1.6.4: every `modal.config._SETTINGS` key as MODAL_<KEY>, plus variables the client
# reads directly.
_KNOWN = frozenset(
    {
        "MODAL_ASYNC_WARNINGS",
        "MODAL_BUILD_VALIDATION",
        "MODAL_CONFIG_PATH",
        "MODAL_CUDA_CHECKPOINT_PATH",
        "MODAL_DEFAULT_CLOUD",
        "MODAL_DEV_SUFFIX",
        "MODAL_DISABLE_API_PROXY",
        "MODAL_ENVIRONMENT",
        "MODAL_FORCE_BUILD",
        "MODAL_FUNCTION_RUNTIME",
        "MODAL_FUNCTION_RUNTIME_DEBUG",
        "MODAL_HEARTBEAT_INTERVAL",
        "MODAL_IDENTITY_TOKEN",
        "MODAL_IDENTITY_TOKEN_FILE",
        "MODAL_IGNORE_CACHE",
        "MODAL_IMAGE_ALLOW_GLOBAL_DEPLOYMENT",
        "MODAL_IMAGE_BUILDER_VERSION",
        "MODAL_IMAGE_ID",
        "MODAL_IS_REMOTE",
        "MODAL_LOGLEVEL",
        "MODAL_LOGS_TIMEOUT",
        "MODAL_LOG_FORMAT",
        "MODAL_LOG_PATTERN",
        "MODAL_MAX_THROTTLE_WAIT",
        "MODAL_OAUTH_CLIENT_ID",
        "MODAL_OAUTH_CLIENT_SECRET",
        "MODAL_OAUTH_JWT_KEY",
        "MODAL_OAUTH_REFRESH_TOKEN",
        "MODAL_OVERRIDE_HEADERS",
        "MODAL_PAYLOAD_FORMAT",
        "MODAL_PROFILE",
        "MODAL_RESTORE_STATE_PATH",
        "MODAL_RICH_CLI",
        "MODAL_RUNTIME_PERF_RECORD",
        "MODAL_SANDBOX_CHANNEL_IDLE_TIMEOUT",
        "MODAL_SANDBOX_V2",
        "MODAL_SERVER_URL",
        "MODAL_SERVE_TIMEOUT",
        "MODAL_SNAPSHOT_DEBUG",
        "MODAL_STREAMS_URL",
        "MODAL_SYNC_ENTRYPOINT",
        "MODAL_TASK_ID",
        "MODAL_TOKEN_ID",
        "MODAL_TOKEN_SECRET",
        "MODAL_TRACEBACK",
        "MODAL_USE_CONTROL_PLANE_SIDECAR_CREATE",
        "MODAL_VOLUME_BLOCK_READ_TIMEOUT",
        "MODAL_WORKER_ID",
    }
)


def is_client_var(name: str) -> bool:
    """True if `name` configures the modal client (known list, plus settings of a loaded client)."""
    if name in _KNOWN:
        return True
    config = sys.modules.get("modal.config")
    settings: dict[str, object] = getattr(config, "_SETTINGS", None) or {}
    return name.startswith("MODAL_") and name[len("MODAL_") :].lower() in settings


def forget_server_state() -> None:
    """Drop what a loaded in-process client cached from the server it talked to before.

    For switching one process between emulators (e.g. the host and rootfs modes): environments
    are cached by name with the image builder version they carry (modal/_environments.py:624),
    and the default image of `Sandbox.create` is one module-level object hydrated once with an
    image id of the first server (modal/sandbox/_common.py:65, modal/app.py:63).
    """
    environments = sys.modules.get("modal._environments")
    if environments is not None:
        environments.ENVIRONMENT_CACHE.clear()
    for name in ("modal.sandbox._common", "modal.app"):
        module = sys.modules.get(name)
        if module is not None:
            setattr(module, "_default_image", module._Image.debian_slim())  # noqa: B010
