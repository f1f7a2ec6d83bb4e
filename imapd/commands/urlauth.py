"""URLAUTH (RFC 4467): GENURLAUTH, RESETKEY, URLFETCH, with the INTERNAL mechanism, and
URLFETCH's parameters of URLAUTH=BINARY (RFC 5524) where they can be answered.

Owns: the rules of who may generate and use a URLAUTH-authorized URL (URLFETCH's
parameters are imapd/urlfetch_binary.py's). The token is
imapd/urlauth.py's; the keys are the store's (one per user and mailbox, made on first use,
RFC 4467 §7). `authorized` verifies a URL as RFC 4467 §6 describes, for URLFETCH and for
CATENATE's URL parts (imapd/commands/catenate.py):

- the text must split into a rump and ``:mechanism:token`` (mechanism INTERNAL); the URL
  must name a message or part on this server (``servername``, or the address the client
  connected to: ``imap://u@127.0.0.1/...`` on a loopback listener), with an owner userid;
- ``;EXPIRE=`` past: refused (RFC 4467 §3 MUST);
- access: ``user+X`` only for a session logged in as X; ``submit+X`` only for a session of
  an admin user (the accounts trusted as message submission entities: ``imapd user admin``);
  ``authuser`` and ``anonymous`` for any logged-in session (there are no anonymous logins);
- the owner's key for the mailbox, or a plausible one when there is no such user, mailbox
  or key (so failing takes the same time), must give the token;
- then the data is read with the owner's rights as they are now (RFC 4467 §7).

Keys and tokens never go to a log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from imapd import urlauth as mech
from imapd import urlfetch_binary
from imapd.commands.acl import lookup
from imapd.commands.base import Outcome, ok
from imapd.commands.urlparts import record_part, url_message
from imapd.protocol import commands as c
from imapd.protocol import imapurl
from imapd.protocol.errors import BadCommand
from imapd.protocol.responses import Atom, Response, Untagged
from imapd.protocol.urlmech import URLMECH_CODE
from store.errors import MailboxInvalid, MailboxNotFound, UserNotFound

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from store.api import MessageRecord, User


def names_this_server(session: Context, host: str | None) -> bool:
    """A URL's host names this server: its ``servername``, or the IP address the client
    reached it at (that literal cannot name another server for this connection)."""
    if host is None:
        return False
    return host == session.config.servername.lower() or host == session.local_host


def _may_use(session: Context, auth: imapurl.UrlAuth) -> bool:
    """RFC 4467 §3: the access identifier against this session's authorization identity."""
    user = session.require_user()
    kind, _, who = auth.access.partition("+")
    if kind == "user":
        return who == user.name
    if kind == "submit":
        return user.is_admin
    return auth.access in ("authuser", "anonymous")


async def authorized(session: Context, text: str, url: imapurl.ImapUrl) -> User | None:
    """The owner of URLAUTH-authorized ``text`` (parsed: ``url``) when it verifies for this
    session now, else None."""
    split = imapurl.split_rump(text)
    auth = url.urlauth
    if split is None or auth is None or auth.token is None:
        return None
    rump, mechanism, token = split
    if mechanism != mech.MECHANISM or not url.is_message or url.user is None:
        return None
    if auth.expire is not None and auth.expire <= dt.datetime.now(dt.UTC):
        return None
    if not names_this_server(session, url.host) or not _may_use(session, auth):
        return None
    key = owner = None
    with contextlib.suppress(UserNotFound):  # else a plausible key all the same (RFC 4467 §6)
        owner = await session.store.get_user(url.user)
    if owner is not None and url.mailbox is not None:
        try:
            info = await session.store.get_mailbox(owner.id, url.mailbox)
        except (MailboxNotFound, MailboxInvalid):
            info = None
        if info is not None:
            key = await session.store.urlauth_key(owner.id, info.id, create=False)
    return owner if mech.verify(key, rump, token) else None


async def handle_genurlauth(session: Context, cmd: c.GenUrlAuth) -> Outcome:
    """GENURLAUTH 1*(url-rump mechanism) (RFC 4467 §7): ``* GENURLAUTH url-full...``."""
    user = session.require_user()
    host = session.config.servername.lower()
    urls: list[str] = []
    for rump, mechanism in cmd.pairs:
        try:
            url = imapurl.parse(rump)
        except imapurl.BadUrl as exc:
            raise BadCommand(f"Not an IMAP URL: {exc}") from None
        if url.urlauth is None:
            raise BadCommand("Missing access identifier in supplied URL")
        if url.urlauth.mechanism is not None:
            raise BadCommand("Supplied URL already carries a URLAUTH")
        if url.user is None:
            raise BadCommand("Missing owner username in supplied URL")
        if not url.is_message:
            raise BadCommand("URLAUTH applies only to a message or message part URL")
        if not names_this_server(session, url.host):
            raise BadCommand(f"Supplied URL names another server than {host}")
        if url.user != user.name:
            raise BadCommand("Supplied URL names another owner than the logged-in user")
        if mechanism != mech.MECHANISM:
            raise BadCommand(f"Unknown URLAUTH mechanism {mechanism}")
        assert url.mailbox is not None
        try:
            info = await lookup(session, url.mailbox, "r")
        except (MailboxNotFound, MailboxInvalid):
            raise BadCommand("Mailbox in supplied URL does not exist") from None
        key = await session.store.urlauth_key(user.id, info.id, create=True)
        if key is None:  # deleted since lookup
            raise BadCommand("Mailbox in supplied URL does not exist")
        urls.append(f"{rump}:{mech.MECHANISM}:{mech.token(key, rump)}")
    return ok("GENURLAUTH completed", None, Untagged((Atom("GENURLAUTH"), *urls)))


async def handle_resetkey(session: Context, cmd: c.ResetKey) -> Outcome:
    """RESETKEY [mailbox *mechanism] (RFC 4467 §7; examples a31-a33 there). The store logs
    the reset (never the key) in the transaction that makes it, so the user's sessions with
    the mailbox selected, in any process or instance, get ``* OK [URLMECH INTERNAL]``
    (imapd/selected.py); this one has the code in its tagged OK (§7.1), or for all keys the
    untagged OK before it when it has a mailbox selected."""
    user = session.require_user()
    if cmd.mailbox is None:
        await session.store.reset_urlauth_keys(user.id, None, session.origin)
        return ok("All keys removed")
    unknown = [m for m in cmd.mechanisms if m != mech.MECHANISM]
    if unknown:
        raise BadCommand(f"Unknown URLAUTH mechanism {unknown[0]}")
    info = await lookup(session, cmd.mailbox, "")
    await session.store.reset_urlauth_keys(user.id, info.id, session.origin)
    return ok("Key reset", URLMECH_CODE)


async def fetch_url(
    session: Context, text: str
) -> tuple[imapurl.ImapUrl, MessageRecord, bytes] | None:
    """URLAUTH-authorized ``text``'s URL, message and data for this session, or None (NIL)."""
    try:
        url = imapurl.parse(text)
    except imapurl.BadUrl:
        return None
    owner = await authorized(session, text, url)
    if owner is None:
        return None
    found = await url_message(session, url, owner)
    if found is None:
        return None
    data = record_part(url, found[1])
    return None if data is None else (url, found[1], data)


class _UrlFetch:
    """URLFETCH's answers, one ``* URLFETCH url data`` per URL as it is read (RFC 4467 §7
    allows one response per URL), so one command holds one URL's data at a time."""

    def __init__(self, session: Context, cmd: c.UrlFetch) -> None:
        self.session = session
        self.cmd = cmd

    async def __aiter__(self) -> AsyncIterator[list[Response]]:
        for text, params in self.cmd.urls:
            found = await fetch_url(self.session, text)
            if not params:  # url-fetch-simple, or no parameters: as RFC 4467 (RFC 5524 §3.1)
                yield [Untagged((Atom("URLFETCH"), text, None if found is None else found[2]))]
                continue
            meta = None if found is None else urlfetch_binary.metadata(*found[:2], params, found[2])
            yield [Untagged((Atom("URLFETCH"), text, *(meta or (None,))))]

    @property
    def ending(self) -> Outcome | None:
        return None


async def handle_urlfetch(session: Context, cmd: c.UrlFetch) -> Outcome:
    """URLFETCH 1*url-fetch-arg (RFC 4467 §7, RFC 5524 §3): an untagged URLFETCH with the
    data or NIL for each URL (with URLAUTH=BINARY's metadata when asked), and OK for any
    syntactically valid command."""
    session.require_user()
    for _, params in cmd.urls:
        if params and (why := urlfetch_binary.check_parameters(params)) is not None:
            raise BadCommand(why)
    return Outcome(text="URLFETCH completed", stream=_UrlFetch(session, cmd))
