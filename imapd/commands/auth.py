"""Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, ID, ENABLE,
NAMESPACE, STARTTLS, LOGIN, AUTHENTICATE (RFC 3501 §6.1-6.2, RFC 2971, RFC 5161, RFC 2342,
RFC 4959)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from imapd.auth_guard import log_failure, quote_for_log
from imapd.commands.base import After, Outcome, ok
from imapd.daemon import SESSION_CLIENT
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.framing import Mode
from imapd.protocol.responses import Atom, Response, Untagged, UntaggedStatus, Value
from imapd.protocol.state import Authenticated, Logout
from imapd.protocol.values import Secret
from store.errors import AuthFailed
from store.namespace import PREFIXES

if TYPE_CHECKING:
    from imapd.commands.context import Context

log = logging.getLogger("imapd.session")

SERVER_ID = ("name", "imapd", "vendor", "imapd project", "version", "0.1.0")


async def handle_capability(session: Context, cmd: c.Capability) -> Outcome:
    """CAPABILITY (RFC 3501 §6.1.1)."""
    caps = tuple(Atom(cap) for cap in session.capabilities())
    return ok("CAPABILITY completed", None, Untagged((Atom("CAPABILITY"), *caps)))


async def handle_noop(session: Context, cmd: c.Noop | c.Check) -> Outcome:
    """NOOP (RFC 3501 §6.1.2) and CHECK (§6.4.1): updates go out after any command."""
    return ok()


async def handle_logout(session: Context, cmd: c.Logout) -> Outcome:
    """LOGOUT (RFC 3501 §6.1.3): BYE, then the tagged OK, then close."""
    outcome = ok("LOGOUT completed", None, UntaggedStatus("BYE", "Logging out"))
    outcome.state = Logout()  # the session closes after the tagged OK
    return outcome


async def handle_id(session: Context, cmd: c.Id) -> Outcome:
    """ID (RFC 2971): ``* ID ("name" "imapd" ...)``. The client's name and version go into
    the session's log context: every later line of the session names them."""
    fields = {key.lower(): value for key, value in cmd.params or () if value is not None}
    if "name" in fields or "version" in fields:
        name = quote_for_log(fields.get("name", ""))
        version = quote_for_log(fields.get("version", ""))
        log.info("session %s: client %s version %s", session.id, name, version)
        SESSION_CLIENT.set(f"{name} {version}")  # this task's records (imapd/daemon.py)
        session.client_id = _shown(fields.get("name", ""), fields.get("version", ""))
    return ok("ID completed", None, Untagged((Atom("ID"), SERVER_ID)))


#: Characters of an ID name or version kept for ``imapd who`` (RFC 2971 allows 1024 each).
CLIENT_ID_MAX = 64


def _shown(name: str, version: str) -> str:
    """The name and version for ``imapd who``: printable characters only, each cut."""
    parts = (
        "".join(ch for ch in part[:CLIENT_ID_MAX] if ch.isprintable()) for part in (name, version)
    )
    return " ".join(p for p in parts if p)


#: ENABLE-able extensions and what they imply (RFC 7162 §3.2.3: QRESYNC implies CONDSTORE).
ENABLEABLE: dict[str, tuple[str, ...]] = {
    "CONDSTORE": (),
    "QRESYNC": ("CONDSTORE",),
    "UTF8=ACCEPT": (),  # RFC 6855 §3: UTF-8 names and quoted strings, both ways
    # --- IMAP4rev2 (RFC 9051 Appendix A) and UIDONLY (RFC 9586 §3.1): imapd/rev2.py
    "IMAP4rev2": (),
    "UIDONLY": (),
}


_SPELLING = {name.upper(): name for name in ENABLEABLE}  # IMAP4REV2 -> IMAP4rev2


def enable(session: Context, name: str, *, selected: bool = True) -> list[Response]:
    """Turn ``name`` (and what it implies) on for the rest of the connection: explicitly by
    ENABLE, or implicitly by a CONDSTORE enabling command (RFC 7162 §3.1: SELECT/EXAMINE
    (CONDSTORE), FETCH MODSEQ or CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE).

    The selected view follows at once (MODSEQ in unsolicited FETCH, VANISHED instead of
    EXPUNGE). Returns the responses owed now: the first CONDSTORE enabling command with a
    mailbox selected reports its HIGHESTMODSEQ (RFC 7162 §3.1). There is never a
    ``[NOMODSEQ]``: every mailbox of this store keeps mod-sequences (§3.1.2.2).
    ``selected=False``: the selected mailbox (if any) is being left (SELECT of another).
    UTF8=ACCEPT reaches the connection through ENABLE's Outcome (``utf8``).
    """
    had_condstore = "CONDSTORE" in session.enabled
    session.enabled.update((name, *ENABLEABLE.get(name, ())))
    view = session.view if selected else None
    if view is None:
        return []
    view.condstore = "CONDSTORE" in session.enabled
    view.qresync = "QRESYNC" in session.enabled
    view.rev2 = "IMAP4rev2" in session.enabled  # imapd/rev2.py
    if view.rev2:
        view.recent.clear()  # no \Recent from now on (RFC 9051 Appendix E item 12)
    view.uidonly = "UIDONLY" in session.enabled
    if view.condstore and not had_condstore:
        return [highestmodseq_response(view.safe_highestmodseq)]
    return []


def highestmodseq_response(modseq: int) -> UntaggedStatus:
    """``* OK [HIGHESTMODSEQ n]`` (RFC 7162 §3.1.2.1)."""
    return UntaggedStatus("OK", "Highest", f"HIGHESTMODSEQ {modseq}")


async def handle_enable(session: Context, cmd: c.Enable) -> Outcome:
    """ENABLE cap... (RFC 5161): ``* ENABLED`` lists only what was newly enabled, each named
    capability once (``ENABLE QRESYNC CONDSTORE`` lists both, RFC 7162 §3.2.3)."""
    before = set(session.enabled)
    offered = set(session.capabilities())
    owed: list[Response] = []
    # Capability names are case-insensitive; each answers in its registered spelling.
    names = [_SPELLING.get(cap.upper(), cap.upper()) for cap in cmd.capabilities]
    for cap in dict.fromkeys(names):
        if cap in ENABLEABLE and cap in offered:
            owed += enable(session, cap)
    newly: list[Value] = [
        Atom(cap) for cap in dict.fromkeys(names) if cap in session.enabled and cap not in before
    ]
    outcome = ok("ENABLE completed", None, Untagged((Atom("ENABLED"), *newly)), *owed)
    if "UTF8=ACCEPT" in newly:  # RFC 6855 §3: from ENABLE's own responses on
        outcome.utf8 = True
    if "IMAP4rev2" in newly:  # RFC 9051 §5.1, Appendix A: UTF-8 names from now on
        outcome.utf8 = True
    return outcome


async def handle_namespace(session: Context, cmd: c.Namespace) -> Outcome:
    """NAMESPACE (RFC 2342 §5): ``* NAMESPACE (("" "/")) (("Other Users/" "/"))
    (("Shared/" "/"))``, the same for everyone (store/namespace.py): it names no user and
    no mailbox."""
    personal, others, shared = ((prefix,) for prefix in PREFIXES)
    return ok("NAMESPACE completed", None, Untagged((Atom("NAMESPACE"), personal, others, shared)))


async def handle_starttls(session: Context, cmd: c.StartTLS) -> Outcome:
    """STARTTLS (RFC 3501 §6.2.1): ``a STARTTLS`` -> ``a OK Begin TLS negotiation now``; the
    session then runs the handshake (``After.STARTTLS``). BAD without a certificate, over
    TLS already, and under COMPRESS (RFC 4978 §4: no TLS below a compression layer); the
    state table refuses it after login."""
    if not session.tls_available:
        raise BadCommand("STARTTLS is not available: no certificate is configured")
    if session.tls:
        raise BadCommand("TLS is active already")
    if session.compressing:
        raise BadCommand("STARTTLS after COMPRESS is not allowed")
    outcome = ok("Begin TLS negotiation now")
    outcome.after = After.STARTTLS
    return outcome


async def _login(session: Context, user: str, password: Secret, mechanism: str) -> Outcome:
    """Verify through the server's `AuthGuard` (back-off, bounded hashing), log a failure
    in one line, and count the session against max_connections_per_user_ip."""
    if not session.plaintext_allowed:
        raise CommandRefused("Plaintext authentication is disabled", "PRIVACYREQUIRED")
    try:
        account = await session.auth_guard.verify(
            session.address, lambda: session.store.authenticate(user, password.reveal())
        )
    except AuthFailed as exc:
        delay = session.auth_guard.failed(session.address, user)
        host = session.peer.rpartition(":")[0] or session.peer
        log_failure(
            address=host,
            user=user,
            mechanism=mechanism,
            reason="unknown-user" if exc.unknown_user else "bad-password",
            session=session.id,
            delay=delay,
        )
        await asyncio.sleep(delay)  # holds only this connection, no hashing slot
        raise
    if not session.admission.login(account.name, session.address):
        raise CommandRefused(  # RFC 5530 LIMIT; Dovecot: mail_max_userip_connections
            "Too many connections for this user from your address", "LIMIT"
        )
    log.info("session %s: login %s from %s", session.id, account.name, session.peer)
    caps = " ".join(session.capabilities(authenticated=True))
    return Outcome(
        text="Logged in", code=f"CAPABILITY {caps}", state=Authenticated(account.name), user=account
    )


async def handle_login(session: Context, cmd: c.Login) -> Outcome:
    """LOGIN user password (RFC 3501 §6.2.3); LOGINDISABLED without TLS off loopback."""
    return await _login(session, cmd.user, cmd.password, "LOGIN")


async def handle_authenticate(session: Context, cmd: c.Authenticate) -> Outcome:
    """AUTHENTICATE PLAIN [initial-response] (RFC 3501 §6.2.2, RFC 4616, SASL-IR RFC 4959).

    Without an initial response the Outcome asks for SASL input: the session sends ``+ ``
    and hands the client's line to ``resume`` (`finish_authenticate`).
    """
    if cmd.mechanism.upper() != "PLAIN":
        raise CommandRefused(f"Unsupported mechanism {cmd.mechanism}", "CANNOT")
    if not session.plaintext_allowed:
        raise CommandRefused("Plaintext authentication is disabled", "PRIVACYREQUIRED")
    if cmd.initial_response is None:

        async def resume(session: Context, data: Secret | None) -> Outcome:
            return await finish_authenticate(session, data)

        return Outcome(text="continue", mode=Mode.SASL, resume=resume)
    return await finish_authenticate(session, cmd.initial_response)


async def finish_authenticate(session: Context, data: Secret | None) -> Outcome:
    """The PLAIN response (RFC 4616), or None when the client cancelled (RFC 3501 §6.2.2:
    BAD)."""
    if data is None:
        raise BadCommand("Authentication cancelled")
    # RFC 4616: [authzid] NUL authcid NUL passwd
    parts = data.reveal().split("\x00")
    if len(parts) != 3 or not parts[1]:
        raise BadCommand("Malformed PLAIN response")
    authzid, authcid, password = parts
    try:  # RFC 4616 §2: UTF-8 (undecodable octets arrive surrogate-escaped; the password's
        # are hashed as sent, as LOGIN's)
        authzid.encode("utf-8")
        authcid.encode("utf-8")
    except UnicodeEncodeError:
        raise BadCommand("Malformed PLAIN response: not UTF-8") from None
    if authzid and authzid != authcid:
        raise CommandRefused("Proxy authorization is not supported", "AUTHORIZATIONFAILED")
    return await _login(session, authcid, Secret(password), "PLAIN")
