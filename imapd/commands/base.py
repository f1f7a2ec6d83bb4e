"""What every handler shares: the `Outcome` it returns and the session surface it may use.

Handlers are ``async def handle_x(session, cmd) -> Outcome``: they meet the store, never the
socket. Raising `ImapError` or `StoreError` is how they refuse; the dispatcher in session.py
turns those into tagged replies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from imapd.protocol.responses import Response


@dataclass(slots=True)
class Outcome:
    """Untagged ``responses`` (then any ``stream`` batches) and the tagged status."""

    text: str = "completed"
    status: str = "OK"
    code: str | None = None
    responses: list[Response] = field(default_factory=list)
    stream: AsyncIterator[list[Response]] | None = None


def ok(text: str = "completed", code: str | None = None, *responses: Response) -> Outcome:
    return Outcome(text=text, code=code, responses=list(responses))
