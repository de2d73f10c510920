"""The host's allocator (issue 21): glibc malloc, so what a big sync frees goes back to the
system; a user's own PYTHONMALLOC is theirs and kept."""

from __future__ import annotations

from modal_offload.host import lifecycle


def test_the_host_gets_glibc_malloc_unless_the_user_chose_an_allocator() -> None:
    env = lifecycle.host_environment({"HOME": "/h"})
    assert env == {"HOME": "/h", "PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2",
                   lifecycle.HOST_MALLOC_MARK: "MALLOC_ARENA_MAX,PYTHONMALLOC"}
    mine = {"HOME": "/h", "PYTHONMALLOC": "debug"}
    assert lifecycle.host_environment(mine) == {**mine, "MALLOC_ARENA_MAX": "2",
                                                 lifecycle.HOST_MALLOC_MARK: "MALLOC_ARENA_MAX"}
    all_mine = {"PYTHONMALLOC": "debug", "MALLOC_ARENA_MAX": "8"}
    assert lifecycle.host_environment(all_mine) == all_mine
