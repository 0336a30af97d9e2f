"""Python asyncio, all connections at once, for scripts/bench.sh: per HOST:PORT
asyncio.open_connection (the loop looks the name up on its executor, then a non-blocking
connect), "GET /", the reply to its end. Prints {"ok", "wall_s", "loop_delay_max_ms"}: the wall
time for all of them, and the longest a 5 ms ticker coroutine was late over that time (a
connect() that blocks the loop shows here).

    python3 benches/eventloop.py HOST:PORT...
"""

import asyncio
import json
import sys
import time


async def one(target):
    host, port = target.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return body.endswith(b"ok\n")


async def main(targets):
    loop = asyncio.get_running_loop()
    late = 0.0
    running = True

    async def ticker():
        nonlocal late
        while running:
            t = loop.time()
            await asyncio.sleep(0.005)
            late = max(late, loop.time() - t - 0.005)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(t) for t in targets))
    wall = time.monotonic() - t0
    running = False
    await tick
    ok = sum(results)
    print(json.dumps({"ok": ok, "n": len(targets), "wall_s": wall, "loop_delay_max_ms": late * 1e3}))
    return 0 if ok == len(targets) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
