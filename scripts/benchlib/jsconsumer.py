"""The events section's JetStream consumer, run as a process of its own (benchlib/jetstream.py
`Consumer` starts it): an ordered push consumer on ``imapd.MessageAppend.>`` from the
stream's new messages, printing ``UID PERF_COUNTER`` per arrival to stdout in chunks. Out of
the bench client's process so that its work per message does not slow the APPEND clients'
loop (a real consumer runs elsewhere); perf_counter is CLOCK_MONOTONIC, the same clock in
every process of the machine.

Usage: python jsconsumer.py NATS_URL  (prints "ready" once subscribed; ends on stdin EOF).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

_UID = re.compile(rb";UID=(\d+)\"")


async def main(url: str) -> None:
    import nats
    from nats.js.api import DeliverPolicy
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    js = nc.jetstream()
    lines: list[str] = []

    async def on_msg(msg: Any) -> None:
        now = time.perf_counter()
        found = _UID.search(msg.data)
        if found:
            lines.append(f"{found.group(1).decode()} {now}\n")

    for _ in range(200):  # the server's sink creates the stream as it starts: wait for it
        try:
            await js.subscribe(
                "imapd.MessageAppend.>",
                cb=on_msg,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
            break
        except NotFoundError:
            await asyncio.sleep(0.1)
    else:
        print("no stream", flush=True)
        return
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    eof = loop.run_in_executor(None, sys.stdin.read)
    while not eof.done():
        await asyncio.wait({eof}, timeout=0.2)
        if lines:
            sys.stdout.write("".join(lines))
            sys.stdout.flush()
            lines.clear()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
