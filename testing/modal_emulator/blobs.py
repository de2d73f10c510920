"""A tiny S3 stand-in for blob uploads (files of 4 MiB or more in mounts go through it).

`BlobCreate` hands out `http://127.0.0.1:<port>/blobs/<blob_id>`; the client PUTs the bytes and
checks the returned ETag against its own MD5, like it does with S3.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from .netutil import bind_tcp


class BlobServer:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self._blobs = blobs
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_put("/blobs/{blob_id}", self._put)
        app.router.add_get("/blobs/{blob_id}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Bind the socket ourselves to learn the free port the kernel picked.
        sock = bind_tcp(host, 0)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _put(self, request: web.Request) -> web.Response:
        data = await request.read()
        self._blobs[request.match_info["blob_id"]] = data
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    async def _get(self, request: web.Request) -> web.Response:
        data = self._blobs.get(request.match_info["blob_id"])
        if data is None:
            return web.Response(status=404, text="no such blob")
        return web.Response(status=200, body=data)
