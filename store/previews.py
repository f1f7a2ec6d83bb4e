"""The backend-independent steps of computing previews for contents stored without one
(RFC 8970; store/sqlite/preview.py, store/postgres/preview.py): which part to read, and the
preview of what was read, each in a worker thread when large."""

from __future__ import annotations

import asyncio

from store import newmessage
from store.mime import BodyPart
from store.mime.preview import preview_of, preview_sources

__all__ = ["COMPUTE_BATCH", "compute", "sources"]

#: Previews computed per read of the missing ones (each reads at most 32 KiB of a message).
COMPUTE_BATCH = 100
#: Octets of message text above which computing goes to a worker thread.
COMPUTE_IN_THREAD = 64 * 1024


async def sources(
    pairs: list[tuple[int, str]],
) -> tuple[dict[int, str], list[tuple[int, BodyPart, int, int]]]:
    """From (contents id, stored structure) pairs: the previews already known to be empty
    (no text part), and the (id, part, start, end) octet ranges to read for the others."""
    if sum(len(text) for _, text in pairs) > newmessage.PARSE_IN_THREAD:
        found = await asyncio.to_thread(preview_sources, pairs)
    else:
        found = preview_sources(pairs)
    empty = {i: "" for i, source in found.items() if source is None}
    wanted = [(i, *source) for i, source in found.items() if source is not None]
    return empty, wanted


async def compute(work: list[tuple[int, BodyPart, bytes]]) -> dict[int, str]:
    """The preview of each (contents id, part, the part's octets)."""

    def run() -> dict[int, str]:
        return {i: preview_of(body, part) for i, part, body in work}

    if sum(len(body) for _, _, body in work) > COMPUTE_IN_THREAD:
        return await asyncio.to_thread(run)
    return run()
