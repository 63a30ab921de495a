"""The naive anchor: the reverse proxy anyone writes in 40 lines of ASGI.

One ``aiohttp.ClientSession`` (keep-alive pool), hop-by-hop headers dropped,
the body read whole, the response streamed back; no routing, no limits, no
retries, no logs, no metrics. ``make bench`` runs it on uvicorn (uvloop,
httptools, 1 worker) as the ``naive aiohttp`` row: what strangler's CPU per
request is compared with.

    python -m bench.naive_proxy --port 8000 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class NaiveProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                self.session = aiohttp.ClientSession(auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.session is not None
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1") not in HOP
        ]
        url = self.upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        async with self.session.request(
            scope["method"], url, headers=headers, data=body or None
        ) as response:
            out = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.items()
                if k.lower() not in HOP
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": out,
                }
            )
            async for chunk in response.content.iter_any():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
        await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        NaiveProxy(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
