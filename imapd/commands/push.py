"""XAPPLEPUSHSERVICE: Apple Mail's push registration (no RFC; as Cyrus imapd speaks it).

Owns: the handler. The registration is stored, and an ApplePushRegistered change recorded,
by `Store.register_push` in one transaction; the notification sink turns that change
into Cyrus's ApplePushService event for whatever talks to APNs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Atom, Untagged

if TYPE_CHECKING:
    from imapd.commands.context import Context

#: aps-version values we understand: 1 (INBOX only) and 2 (a mailbox list).
APS_VERSIONS = frozenset({1, 2})


async def handle_xapplepushservice(session: Context, cmd: c.XApplePushService) -> Outcome:
    """Command: XAPPLEPUSHSERVICE aps-version 2 aps-account-id ID aps-device-token TOKEN
    aps-subtopic com.apple.mobilemail mailboxes (INBOX "Notes")

    Answers ``* XAPPLEPUSHSERVICE aps-version "2" aps-topic "TOPIC"`` then OK (Cyrus's
    cmd_xapplepushservice). Only when ``aps_topic`` is configured, else the command does
    not exist (BAD), as in Cyrus. Mailboxes that do not exist are left out of the
    registration rather than failing it (a deleted folder must not stop push for the rest).
    """
    topic = session.config.aps_topic
    if not topic:
        raise BadCommand("Unknown command")
    if cmd.aps_version not in APS_VERSIONS:
        raise CommandRefused(f"Unsupported aps-version {cmd.aps_version}")
    user = session.require_user()
    await session.store.register_push(
        user.id,
        cmd.aps_version,
        cmd.account_id,
        cmd.device_token,
        cmd.subtopic,
        cmd.mailboxes,
        session.origin,
    )
    return ok(
        "XAPPLEPUSHSERVICE completed",
        None,
        Untagged(
            (
                Atom("XAPPLEPUSHSERVICE"),
                Atom("aps-version"),
                str(cmd.aps_version),
                Atom("aps-topic"),
                topic,
            )
        ),
    )
