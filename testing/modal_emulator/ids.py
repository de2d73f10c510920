"""Object ids shaped like Modal's.

The client routes on id shape, so shapes matter:

* `modal.sandbox._common._is_v1_sandbox_id` treats exactly ``sb-`` + 22 alphanumerics as a
  *V1* sandbox and anything else starting with ``sb-`` as V2. Sandboxes created through the
  V2 control plane get a 24 character suffix (still alphanumeric, which is what ``modal
  shell`` checks); those created through V1 (`SandboxCreate`, which the client uses for GPU
  sandboxes: modal/sandbox/_sandbox.py:76-79) get 22.
* `modal.sandbox._task_command_router_client._is_v2_task_id` treats ``ta-...V`` as a V2 sandbox
  task, so task ids end in ``V``.
"""

from __future__ import annotations

import secrets
import string

_ALNUM = string.ascii_letters + string.digits

# Suffix length of a V2 sandbox id; must differ from the V1 length (22).
V2_SANDBOX_SUFFIX_LEN = 24


def _suffix(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_id(prefix: str) -> str:
    """A generic object id such as ``ap-...``, ``im-...`` (22 alphanumerics, like Modal's)."""
    return f"{prefix}-{_suffix(22)}"


def new_sandbox_id() -> str:
    return f"sb-{_suffix(V2_SANDBOX_SUFFIX_LEN)}"


def new_task_id() -> str:
    return f"ta-{_suffix(21)}V"


def new_v1_sandbox_id() -> str:
    return f"sb-{_suffix(22)}"


def new_v1_task_id() -> str:
    # Any 22 alphanumerics but a final "V", which would mark a V2 task.
    return f"ta-{_suffix(21)}{secrets.choice(_ALNUM.replace('V', ''))}"
