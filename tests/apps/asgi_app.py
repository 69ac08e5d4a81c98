"""A stdlib-only ASGI app for the supervisor tests under Uvicorn (an async worker, concurrency > 1).

Run as `uvicorn --uds SOCKET asgi_app:app` from this directory.

Endpoints (every response carries the pid in X-Worker-Pid):
  /                "hello from PID"
  /health          "ok"
  /pid             the pid
  /sleep?ms=N      answers after N milliseconds without blocking the event loop
  /stats           JSON: {"in_flight": N, "max_in_flight": M}, counting /sleep requests only,
                   so a test can see that requests overlapped inside this one process
  /hang            never answers (awaits forever)
"""

import asyncio
import json
import os
from urllib.parse import parse_qs

STATS = {"in_flight": 0, "max_in_flight": 0}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    if path == "/health":
        await reply(send, 200, "ok\n")
    elif path == "/pid":
        await reply(send, 200, str(os.getpid()))
    elif path == "/sleep":
        ms = int(query.get("ms", ["1000"])[0])
        STATS["in_flight"] += 1
        STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
        try:
            await asyncio.sleep(ms / 1000)
        finally:
            STATS["in_flight"] -= 1
        await reply(send, 200, "slept\n")
    elif path == "/stats":
        await reply(send, 200, json.dumps(STATS), "application/json")
    elif path == "/hang":
        await asyncio.Event().wait()
    else:
        await reply(send, 200, f"hello from {os.getpid()}\n")


async def reply(send, status, text, content_type="text/plain"):
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-worker-pid", str(os.getpid()).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
