"""curl's imap:// URLs (RFC 5092): LIST, FETCH by UID and section, SEARCH, APPEND, custom.

``-v`` puts the dialogue on stderr, which a failure shows.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.interop import (
    describe,
    imap,
    message,
    require_program,
    run,
    seed,
    server_mailbox,
)
from tests.helpers.server import PASSWORD, RunningServer


def curl(home: Path, url: str, *args: str) -> str:
    proc = run(
        ["curl", "-v", "-sS", "--max-time", "20", "-u", f"alice:{PASSWORD}", *args, url],
        home=home,
        timeout=30,
    )
    assert not re.search(r"^< \S+ BAD ", proc.stderr, re.MULTILINE), describe(proc)
    return proc.stdout


def test_list_fetch_search_append(server: RunningServer, home: Path) -> None:
    require_program("curl")
    base = f"imap://{server.host}:{server.port}"
    seed(server, "INBOX", "curl one", "curl two")
    seed(server, "Work", "work item")
    with imap(server) as c:
        c.select_folder("INBOX", readonly=True)
        (uid_two,) = c.search(["SUBJECT", "curl two"])

    listing = curl(home, base + "/")
    assert '"/" "INBOX"' in listing or '"/" INBOX' in listing
    assert '"Work"' in listing or " Work\n" in listing

    body = curl(home, f"{base}/INBOX;UID={uid_two}")
    assert body == message("curl two").decode().replace("\r\n", "\n")
    text = curl(home, f"{base}/INBOX;UID={uid_two};SECTION=TEXT")
    assert text.strip() == "Body of curl two"

    assert curl(home, f"{base}/INBOX?SUBJECT%20%22curl%20two%22").split() == ["*", "SEARCH", "2"]

    upload = home / "upload.eml"
    upload.write_bytes(message("uploaded by curl"))
    curl(home, f"{base}/Work", "--upload-file", str(upload))
    # curl APPENDs with (\Seen), as a sent copy.
    assert server_mailbox(server, "Work") == {"work item": set(), "uploaded by curl": {"\\Seen"}}

    status = curl(home, f"{base}/", "-X", "STATUS Work (MESSAGES UIDNEXT)")
    assert "MESSAGES 2" in status and "UIDNEXT 3" in status
