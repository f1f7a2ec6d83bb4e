"""IMAP4rev2 (RFC 9051) beside IMAP4rev1, and UIDONLY (RFC 9586): what they advertise.

Both are switched on per connection by ENABLE (RFC 9051 Appendix A: "If both IMAP4rev1 and
IMAP4rev2 are advertised, an IMAP client that wants to use IMAP4rev2 MUST issue an "ENABLE
IMAP4rev2" command"; RFC 9586 §3.1); `imapd.commands.auth.enable` sets the session's
`SelectedView` switches (``rev2``, ``uidonly``), and the rest reads them there. The list
of every RFC 9051 Appendix E item and where it is handled: docs/imap4rev2.md.
"""

from __future__ import annotations

#: IMAP4rev2 is advertised, and so ENABLE-able, only while this is True. RFC 9051 folds
#: in the FETCH side of BINARY (Appendix B; Appendix E item 2): BINARY[], BINARY.PEEK and
#: BINARY.SIZE (imapd/fetch_binary.py). Set False if BINARY is ever taken out: IMAP4rev2
#: must not be advertised without it.
ADVERTISE_IMAP4REV2 = True


def capabilities() -> tuple[str, ...]:
    """The capabilities of this module, for the CAPABILITY list (imapd/server.py)."""
    rev2 = ("IMAP4rev2",) if ADVERTISE_IMAP4REV2 else ()
    return (*rev2, "UIDONLY")  # RFC 9586 §3
