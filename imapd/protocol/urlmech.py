"""The URLMECH status response code (RFC 4467 §7.1 "BASE.7.1.URLMECH"): what RESETKEY's
tagged OK carries, and the untagged OK that the user's other sessions with the mailbox
selected receive (RFC 4467 §7 "BASE.6.3.RESETKEY": "Any current IMAP session logged in as
the user that has the mailbox selected will receive an untagged OK response with the
URLMECH status response code").

Owns: the code's text, that response, and the one SELECT and EXAMINE send (§7.1: the
code "is returned in an untagged OK response in response to a RESETKEY, SELECT, or EXAMINE
command"). The grammar (RFC 4467 §9)::

    resp-text-code  =/ "URLMECH" SP "INTERNAL" *(SP mechanism ["=" base64])

INTERNAL is the one mechanism this server implements (imapd/urlauth.py), and it has no
mechanism-specific data, so nothing sensitive is ever sent (RFC 4467 §10 asks for a
configuration that keeps the code off unprotected sessions only because of such data).
Pure: imports nothing but the response values.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol.responses import UntaggedStatus

#: The mechanisms listed after ``URLMECH``: INTERNAL first, as the grammar requires.
MECHANISMS: Final = ("INTERNAL",)
#: The ``resp-text-code`` itself.
URLMECH_CODE: Final = " ".join(("URLMECH", *MECHANISMS))
#: The untagged OK told to a session whose selected mailbox's access key was reset
#: (RESETKEY of that mailbox, or RESETKEY of all the user's keys).
URLMECH_RESET: Final = UntaggedStatus("OK", "Mailbox access key reset", URLMECH_CODE)
#: The untagged OK among SELECT's and EXAMINE's responses (RFC 4467 §7.1), as Cyrus sends.
URLMECH_SELECT: Final = UntaggedStatus("OK", "URL mechanisms", URLMECH_CODE)
