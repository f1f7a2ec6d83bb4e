"""imapfilter: a Lua config that files messages by subject and flags others by sender.

imapfilter searches on the server (``UID SEARCH ... SUBJECT``), moves with COPY (creating
the target after ``[TRYCREATE]``) + STORE \\Deleted + EXPUNGE, and marks with STORE. ``-v``
prints the dialogue, which a failure shows.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.interop import (
    imap,
    message,
    require_program,
    run,
    seed,
    server_mailbox,
)
from tests.helpers.server import PASSWORD, RunningServer

CONFIG = """\
options.timeout = 20
options.create = true
options.expunge = true
options.info = true

account = IMAP {{
  server = '{host}',
  port = {port},
  username = 'alice',
  password = '{password}',
}}

invoices = account.INBOX:contain_subject('invoice')
invoices:move_messages(account['Finance/Invoices'])

boss = account.INBOX:contain_from('boss@example.org')
boss:mark_flagged()
"""


def test_move_by_subject(server: RunningServer, home: Path) -> None:
    require_program("imapfilter")
    seed(server, "INBOX", "Invoice 42", "hello", "Your INVOICE for March")
    with imap(server) as c:
        c.append(
            "INBOX", message("weekly report", "see the invoices folder", sender="boss@example.org")
        )
    config = home / "config.lua"
    config.write_text(CONFIG.format(host=server.host, port=server.port, password=PASSWORD))

    run(["imapfilter", "-c", str(config), "-v"], home=home, timeout=60)

    assert server_mailbox(server, "INBOX") == {"hello": set(), "weekly report": {"\\Flagged"}}
    assert server_mailbox(server, "Finance/Invoices") == {
        "Invoice 42": set(),
        "Your INVOICE for March": set(),
    }
