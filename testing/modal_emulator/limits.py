"""The service's limits, checked where Modal checks them (the server), with the status the client
turns into the same exception class as on Modal.

Status -> exception (modal/_grpc_client.py:27-44): INVALID_ARGUMENT -> InvalidError,
ALREADY_EXISTS -> AlreadyExistsError, RESOURCE_EXHAUSTED -> ResourceExhaustedError,
FAILED_PRECONDITION -> ConflictError, NOT_FOUND -> NotFoundError.

Sources (also listed in README.md):
* timeout: "a `timeout` of up to 24 hours" (https://modal.com/docs/guide/sandboxes, Timeouts).
  `timeout=None`/0 is refused by the client itself (modal/sandbox/_common.py:432).
* idle_timeout: documented with the same ceiling (best reading of the same page; a third-party
  summary of it says "idle timeouts (up to 24h)").
* cpu / memory: "a maximum is enforced ... Requests exceeding the maximum will be rejected with
  an InvalidError" (https://modal.com/docs/guide/resources). The numbers are not published:
  the emulator uses 64 cores and 344064 MiB (336 GiB), a documented best reading, so that
  absurd requests fail as they would on Modal. A limit below the request is refused by the
  client (modal/_resources.py:25,39).
* names: `check_object_name` (modal/_utils/name_utils.py:69-78, rule at :26-33): at most 64
  characters of [a-zA-Z0-9-_.], and not shaped like an App id. The client checks on create
  (modal/sandbox/_common.py:436); the server checks again (also for SandboxSetName).
* tags: the client does not check Sandbox tags; the rule Modal states for tags
  (modal/_utils/name_utils.py:56-66, `check_tag_dict`): keys and values of 1-63 characters of
  [a-zA-Z0-9._-].
* exec stdin: one write carries at most 16 MiB (modal/io_streams.py:636,752: the client raises
  BufferError before sending more).
"""

from __future__ import annotations

import re
from typing import NoReturn

from grpclib import GRPCError, Status
from modal_proto import api_pb2

MAX_TIMEOUT_SECS = 24 * 60 * 60
MAX_IDLE_TIMEOUT_SECS = 24 * 60 * 60
MAX_MILLI_CPU = 64 * 1000
MAX_MEMORY_MB = 336 * 1024
MAX_NAME_LENGTH = 64
MAX_TAG_LENGTH = 63
MAX_STDIN_WRITE_BYTES = 16 * 1024 * 1024

_NAME = re.compile(r"^[a-zA-Z0-9\-_.]+$")
_APP_ID = re.compile(r"^ap-[a-zA-Z0-9]{22}$")
_TAG = re.compile(rf"^[a-zA-Z0-9._-]{{1,{MAX_TAG_LENGTH}}}$")


def _invalid(message: str) -> NoReturn:
    raise GRPCError(Status.INVALID_ARGUMENT, message)


def check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name) or _APP_ID.match(name):
        _invalid(
            f"Invalid Sandbox name: '{name}'. Names may contain only alphanumeric characters, "
            "dashes, periods, and underscores, must be shorter than 64 characters, and cannot "
            "conflict with App ID strings."
        )


def check_tags(tags: dict[str, str]) -> None:
    for key, value in tags.items():
        for what, text in (("key", key), ("value", value)):
            if not _TAG.match(text):
                _invalid(
                    f"Invalid tag {what}: {text!r}. Tags may contain only alphanumeric "
                    "characters, dashes, periods, or underscores, and must be 63 characters "
                    "or less."
                )


def check_sandbox(definition: api_pb2.Sandbox) -> None:
    """Every limit a SandboxCreateV2 definition must respect."""
    d = definition
    # timeout_secs is unsigned; 0 means "unset" (Modal's 300 s default applies).
    if d.timeout_secs > MAX_TIMEOUT_SECS:
        _invalid(f"timeout must be at most {MAX_TIMEOUT_SECS} seconds (24 hours), "
                 f"got {d.timeout_secs}")
    if d.idle_timeout_secs > MAX_IDLE_TIMEOUT_SECS:
        _invalid(f"idle_timeout must be at most {MAX_IDLE_TIMEOUT_SECS} seconds (24 hours), "
                 f"got {d.idle_timeout_secs}")
    res = d.resources
    if res.milli_cpu > MAX_MILLI_CPU or res.milli_cpu_max > MAX_MILLI_CPU:
        _invalid(f"cpu request of {max(res.milli_cpu, res.milli_cpu_max) / 1000:g} cores "
                 f"exceeds the maximum of {MAX_MILLI_CPU // 1000}")
    if res.memory_mb > MAX_MEMORY_MB or res.memory_mb_max > MAX_MEMORY_MB:
        _invalid(f"memory request of {max(res.memory_mb, res.memory_mb_max)} MiB exceeds the "
                 f"maximum of {MAX_MEMORY_MB} MiB")
    check_gpu(res.gpu_config)
    if d.HasField("name"):
        check_name(d.name)


# GPU types Modal accepts (https://modal.com/docs/guide/gpu; the client upper-cases the type
# and sends it as `gpu_type` with a `count`: modal/_utils/function_utils.py:655-669) and the
# most GPUs one container can have (8, "up to 8 GPUs" in the same guide).
GPU_TYPES = frozenset({"T4", "L4", "A10", "A10G", "A100", "A100-40GB", "A100-80GB", "L40S",
                       "H100", "H100!", "H200", "B200", "B200+", "RTX-PRO-6000"})
MAX_GPU_COUNT = 8


def check_gpu(gpu: api_pb2.GPUConfig) -> None:
    if not gpu.gpu_type:
        if gpu.count:
            _invalid("a GPU count was given without a GPU type")
        return
    if gpu.gpu_type not in GPU_TYPES:
        _invalid(f"Unknown GPU type: {gpu.gpu_type!r}")
    if not 1 <= gpu.count <= MAX_GPU_COUNT:
        _invalid(f"GPU count must be between 1 and {MAX_GPU_COUNT}, got {gpu.count}")
