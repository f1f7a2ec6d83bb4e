"""curl (a real client) drives URLAUTH and CATENATE with custom commands (``-X``): alice
generates a URLAUTH-authorized URL, bob fetches it with URLFETCH and builds a message from
it with CATENATE; a tampered URL gets NIL. ``-v`` puts the dialogue on stderr."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.interop import describe, message, require_program, run, seed
from tests.helpers.server import PASSWORD, RunningServer


def curl(home: Path, user: str, url: str, command: str) -> str:
    proc = run(
        ["curl", "-v", "-sS", "--max-time", "20", "-u", f"{user}:{PASSWORD}", "-X", command, url],
        home=home,
        timeout=30,
    )
    assert not re.search(r"^< \S+ (BAD|NO) ", proc.stderr, re.MULTILINE), describe(proc)
    return proc.stdout


def test_genurlauth_urlfetch_catenate(server: RunningServer, home: Path) -> None:
    require_program("curl")
    base = f"imap://{server.host}:{server.port}/"
    seed(server, "INBOX", "shared by url")
    rump = "imap://alice@localhost/INBOX/;UID=1/;SECTION=TEXT;URLAUTH=user+bob"
    out = curl(home, "alice", base, f'GENURLAUTH "{rump}" INTERNAL')
    m = re.search(r'\* GENURLAUTH "([^"]+)"', out)
    assert m, out
    url = m.group(1)
    assert url.startswith(rump + ":INTERNAL:")
    fetched = curl(home, "bob", base, f'URLFETCH "{url}"')
    text = message("shared by url").partition(b"\r\n\r\n")[2]
    # curl prints the response line of a custom command, not the literal that follows it.
    assert f'* URLFETCH "{url}" {{{len(text)}}}' in fetched, fetched
    forged = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert f'* URLFETCH "{forged}" NIL' in curl(home, "bob", base, f'URLFETCH "{forged}"')
    curl(home, "bob", base, f'APPEND INBOX CATENATE (URL "{url}")')
    status = curl(home, "bob", base, "STATUS INBOX (MESSAGES SIZE)")
    assert "MESSAGES 1" in status and f"SIZE {len(text)}" in status, status
