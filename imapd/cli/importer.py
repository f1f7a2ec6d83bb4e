"""``imapd import USER MAILBOX PATH``: a Maildir or an mbox file into a mailbox.

Owns: reading the two formats into `Source` values (pure apart from reading the files:
`maildir_flags`, `from_line_date`, `mbox_flags` are pure) and appending them through the
store's normal ``append`` in batches: each batch is one transaction and one
MessagesAdded(kind="import") with Origin(service="cli"), so sessions, NOTIFY and the event
sink see MessageAppend events exactly as for IMAP APPEND. After each batch a running server
is told (imapd/control/), so an IDLE client sees the messages arrive batch by batch.

Formats:
- Maildir (cr.yp.to/proto/maildir.html): the files of ``cur/`` and ``new/`` (``tmp/`` is
  ignored), oldest first by mtime then name. Flags from the info suffix ``:2,FLAGS``:
  D \\Draft, F \\Flagged, P $Forwarded, R \\Answered, S \\Seen, T \\Deleted (lower-case
  letters are Dovecot keyword indexes, unknown without its dovecot-keywords file: ignored).
  INTERNALDATE: the file's mtime (the delivery time, as Dovecot and Cyrus take it).
- mbox (stdlib `mailbox.mbox`, mboxo/mboxrd alike): INTERNALDATE from the ``From_`` line
  (asctime, UTC unless a zone follows), else the Date header, else now. Flags from the
  Status (R \\Seen) and X-Status (A \\Answered, F \\Flagged, T \\Draft, D \\Deleted)
  headers, which stay in the message as they were.
Line ends become CRLF (RFC 5322 §2.1; both formats store LF on Unix).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.parser
import email.utils
import mailbox
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imapd import control
from imapd.cli.common import CLI_ORIGIN, Subparsers, add_data_dir, with_store
from imapd.config import Config
from store.api import NewMessage, Store
from store.errors import MailboxNotFound, StoreError

#: Maildir info letters (the spec's, and P as Dovecot maps it).
MAILDIR_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
#: Octets per transaction at most, whatever --batch says (one big message is one batch).
BATCH_OCTETS = 32 * 1024 * 1024

_BARE_LF = re.compile(rb"(?<!\r)\n")
_FROM_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +"
    r"(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))?(?: +([A-Z]{3,5}|[+-]\d{4}))? +(\d{4})"
    r"(?: +([+-]\d{4}))?"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Source:
    """One message to import: where it came from (for messages), bytes, flags, date."""

    origin: str
    content: bytes
    flags: tuple[str, ...]
    internaldate: dt.datetime | None


def crlf(raw: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", raw)


def maildir_flags(filename: str) -> tuple[str, ...]:
    """Flags of a Maildir file name's info suffix ``:2,FRS`` (none without one)."""
    _, sep, info = filename.rpartition(":2,")
    if not sep:
        return ()
    return tuple(MAILDIR_FLAGS[c] for c in sorted(set(info)) if c in MAILDIR_FLAGS)


def from_line_date(line: str) -> dt.datetime | None:
    """The date of an mbox ``From_`` line (``From sender Sat Jan  3 01:05:34 1996``, maybe
    with a zone), aware; None when there is none."""
    m = _FROM_DATE.search(line)
    if m is None:
        return None
    month, day, hour, minute, second, zone, year, trailing = m.groups()
    offset = dt.timedelta(0)
    for z in (trailing, zone):
        if z is not None and z[0] in "+-":
            sign = -1 if z[0] == "-" else 1
            offset = sign * dt.timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
    try:
        return dt.datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=dt.timezone(offset),
        )
    except ValueError:
        return None


def mbox_flags(status: str, x_status: str) -> tuple[str, ...]:
    """Flags from an mbox message's Status and X-Status headers (mutt, Thunderbird, pine)."""
    out: list[str] = []
    if "R" in status:
        out.append("\\Seen")
    for letter, flag in (
        ("A", "\\Answered"),
        ("F", "\\Flagged"),
        ("T", "\\Draft"),
        ("D", "\\Deleted"),
    ):
        if letter in x_status:
            out.append(flag)
    return tuple(out)


def read_maildir(path: Path) -> Iterator[Source]:
    files: list[tuple[float, str, Path]] = []
    for sub in ("cur", "new"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            files.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
    for mtime, name, file in sorted(files):
        yield Source(
            origin=str(file),
            content=crlf(file.read_bytes()),
            flags=maildir_flags(name),
            internaldate=dt.datetime.fromtimestamp(int(mtime), dt.UTC),
        )


def read_mbox(path: Path) -> Iterator[Source]:
    box = mailbox.mbox(path, create=False)
    headers = email.parser.BytesHeaderParser()
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key, from_=True)
            first, _, rest = raw.partition(b"\n")
            when = from_line_date(first.decode("latin-1"))
            head = headers.parsebytes(rest)
            if when is None and head.get("Date"):
                try:
                    when = email.utils.parsedate_to_datetime(str(head["Date"]))
                except (TypeError, ValueError):
                    when = None
                if when is not None and when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
            yield Source(
                origin=f"{path} #{key}",
                content=crlf(rest),
                flags=mbox_flags(str(head.get("Status", "")), str(head.get("X-Status", ""))),
                internaldate=when,
            )
    finally:
        box.close()


def sources(path: Path, fmt: str) -> Iterator[Source]:
    """Raises ValueError when ``path`` is neither format."""
    if fmt == "auto":
        fmt = "maildir" if path.is_dir() else "mbox"
    if fmt == "maildir":
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise ValueError(f"{path}: not a Maildir (no cur/ or new/)")
        return read_maildir(path)
    if not path.is_file():
        raise ValueError(f"{path}: not an mbox file")
    return read_mbox(path)


def batches(items: Iterator[Source], size: int) -> Iterator[list[Source]]:
    batch: list[Source] = []
    octets = 0
    for item in items:
        if batch and (len(batch) >= size or octets + len(item.content) > BATCH_OCTETS):
            yield batch
            batch, octets = [], 0
        batch.append(item)
        octets += len(item.content)
    if batch:
        yield batch


def add_parser(sub: Subparsers) -> None:
    imp = sub.add_parser("import", help="import a Maildir or an mbox file into a mailbox")
    imp.add_argument("user")
    imp.add_argument("mailbox")
    imp.add_argument("path", help="a Maildir (with cur/ and new/) or an mbox file")
    imp.add_argument(
        "--format",
        choices=("auto", "maildir", "mbox"),
        default="auto",
        help="default: a directory is a Maildir, a file an mbox",
    )
    imp.add_argument("--create", action="store_true", help="create the mailbox if missing")
    imp.add_argument(
        "--batch",
        type=_positive,
        default=100,
        metavar="N",
        help="messages per transaction (default 100)",
    )
    add_data_dir(imp)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return int(text)


async def main(args: argparse.Namespace, config: Config) -> int:
    path = Path(args.path)
    try:
        items = sources(path, args.format)
    except ValueError as exc:
        print(f"imapd import: {exc}", file=sys.stderr)
        return 2

    async def act(store: Store) -> int:
        imported = 0
        try:
            user = await store.get_user(args.user)
            try:
                info = await store.get_mailbox(user.id, args.mailbox)
            except MailboxNotFound:
                if not args.create:
                    raise
                info = await store.create_mailbox(user.id, args.mailbox, CLI_ORIGIN)
            for batch in batches(items, args.batch):
                await store.append(
                    user.id,
                    info.name,
                    [NewMessage(s.content, s.flags, s.internaldate) for s in batch],
                    CLI_ORIGIN,
                    kind="import",
                )
                imported += len(batch)
                await control.notify_changed(config.data_dir)  # sessions see each batch
        except StoreError as exc:
            print(
                f"imapd import: {exc.text} ({imported} messages imported before)", file=sys.stderr
            )
            return 1
        except OSError as exc:
            print(f"imapd import: {exc} ({imported} messages imported before)", file=sys.stderr)
            return 1
        print(
            f"imported {imported} message{'' if imported == 1 else 's'} into"
            f" {args.user} {info.name}"
        )
        return 0

    return await with_store(config, act)
