"""The host's allocator (issue 21): glibc malloc, so what a big sync frees goes back to the
system; a user's own PYTHONMALLOC is theirs and kept."""

from __future__ import annotations

from modal_offload.host import lifecycle


def test_the_host_gets_glibc_malloc_unless_the_user_chose_an_allocator() -> None:
    env = lifecycle.host_environment({"HOME": "/h"})
    assert env == {"HOME": "/h", "PYTHONMALLOC": "malloc", lifecycle.HOST_MALLOC_MARK: "1"}
    mine = {"HOME": "/h", "PYTHONMALLOC": "debug"}
    assert lifecycle.host_environment(mine) == mine
