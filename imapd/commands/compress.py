"""COMPRESS DEFLATE (RFC 4978). The handler only decides; the session turns deflate on for
both directions right after writing this command's tagged OK (``After.COMPRESS``),
so the sans-IO core keeps parsing plain bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.base import After, Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import CommandRefused

if TYPE_CHECKING:
    from imapd.commands.context import Context


async def handle_compress(session: Context, cmd: c.Compress) -> Outcome:
    """COMPRESS DEFLATE (RFC 4978 §3): ``a COMPRESS DEFLATE`` -> ``a OK DEFLATE active``, then
    raw deflate both ways; a second one gets ``NO [COMPRESSIONACTIVE]``."""
    if session.compressing:
        raise CommandRefused("DEFLATE active already", "COMPRESSIONACTIVE")
    outcome = ok("DEFLATE active")
    outcome.after = After.COMPRESS
    return outcome
