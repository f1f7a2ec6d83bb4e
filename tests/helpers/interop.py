"""Helpers for driving real IMAP clients (Debian packages, Python libraries) at our server.

Each client runs as a subprocess with a timeout, HOME pointed at ``tmp_path`` (so no user
configuration leaks in and every Maildir and rc file lives in the test's directory), and its
most verbose protocol logging on: a failure message carries the client's own transcript of
the IMAP dialogue. Results are checked on the server side through a separate imapclient
connection, never through the client under test.

A missing program is a skip on a developer machine and a failure in CI (``CI=true``, set by
every CI system and by ``.ci/run``'s callers), so the suite cannot silently stop testing a
client because a package went missing.
"""

from __future__ import annotations

import importlib
import mailbox
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any, TypeVar

import pytest
from imapclient import IMAPClient

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

T = TypeVar("T")

# Debian package providing each program, for the skip/failure message.
PACKAGES = {
    "mbsync": "isync",
    "offlineimap": "offlineimap3",
    "fetchmail": "fetchmail",
    "getmail": "getmail6",
    "imapfilter": "imapfilter",
    "neomutt": "neomutt",
    "tmux": "tmux",
    "curl": "curl",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_program(name: str) -> str:
    """The program's path; skip the test if it is missing (fail under CI=true)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not installed (Debian package {PACKAGES.get(name, name)}; see .ci/run)"
        if in_ci():
            pytest.fail(msg + " and CI=true: a missing interop client is a failure")
        pytest.skip(msg)
    return path


def require_module(name: str) -> Any:
    """Import a Python client library; skip if missing (fail under CI=true)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        msg = f"Python module {name} not installed (pip install -e '.[test]')"
        if in_ci():
            pytest.fail(msg + " and CI=true: a missing interop client is a failure")
        pytest.skip(msg)


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: nothing from the developer's own mail configuration."""
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
        "USER": os.environ.get("USER", "root"),
    }
    env.update(extra)
    return env


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def tail(text: str, lines: int = 150) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run(
    args: list[str],
    *,
    home: Path,
    timeout: float = 60,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client to completion; on a non-zero exit or a timeout fail with its output."""
    try:
        proc = subprocess.run(
            args,
            cwd=home,
            env=env or client_env(home),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{shlex.join(args)} timed out after {timeout}s\n--- stdout\n"
            f"{tail(_text(exc.stdout))}\n--- stderr\n{tail(_text(exc.stderr))}"
        )
    if check and proc.returncode != 0:
        pytest.fail(describe(proc))
    return proc


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{shlex.join(proc.args)} exited {proc.returncode}\n--- stdout\n{tail(proc.stdout)}"
        f"\n--- stderr\n{tail(proc.stderr)}"
    )


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 20,
    what: str = "condition",
    explain: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{explain()}")
        time.sleep(0.05)


def message(subject: str, body: str = "", *, sender: str = "sender@example.org") -> bytes:
    slug = "".join(c if c.isalnum() else "-" for c in subject.lower())
    return (
        f"From: {sender}\r\n"
        f"To: alice@example.org\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Fri, 06 Nov 2026 10:00:00 +0100\r\n"
        f"Message-ID: <{slug}@example.org>\r\n"
        f"\r\n"
        f"{body or 'Body of ' + subject}\r\n"
    ).encode()


def subject_of(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    return str(make_header(decode_header(msg.get("Subject", ""))))


@contextmanager
def imap(server: RunningServer, user: str = "alice") -> Iterator[IMAPClient]:
    """A separate imapclient connection for setting up and checking server-side state."""
    client = IMAPClient(server.host, server.port, ssl=False, timeout=15)
    client.login(user, PASSWORD)
    try:
        yield client
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - a failed logout must not hide the test's result
            client.shutdown()


def seed(server: RunningServer, folder: str, *subjects: str, flags: tuple[str, ...] = ()) -> None:
    with imap(server) as c:
        if folder != "INBOX" and not c.folder_exists(folder):
            c.create_folder(folder)
        for subject in subjects:
            c.append(folder, message(subject), flags=flags)


def bulk_append(server: RunningServer, folder: str, messages: list[bytes]) -> None:
    """One MULTIAPPEND (RFC 3502) with LITERAL+ over a raw socket: quick seeding of many
    messages (imaplib's APPEND pays a delayed-ACK round trip per message)."""
    raw = RawClient.connect(server.host, server.port)
    try:
        raw.login("alice", PASSWORD)
        parts = [f'B1 APPEND "{folder}"'.encode()]
        for msg in messages:
            parts.append(b" {%d+}\r\n%s" % (len(msg), msg))
        raw.send(b"".join(parts) + b"\r\n")
        tagged = raw.until_tagged("B1")[-1]
        assert tagged.startswith("B1 OK"), tagged
    finally:
        raw.close()


def server_mailbox(server: RunningServer, folder: str, user: str = "alice") -> dict[str, set[str]]:
    """Subject -> flags (without \\Recent) of every message in ``folder``, read-only."""
    with imap(server, user) as c:
        c.select_folder(folder, readonly=True)
        uids = c.search(["ALL"])
        data = c.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    out: dict[str, set[str]] = {}
    for item in data.values():
        subject = subject_of(item[b"BODY[HEADER.FIELDS (SUBJECT)]"])
        assert subject not in out, f"duplicate message {subject!r} in {folder}"
        out[subject] = {_text(f) for f in item[b"FLAGS"]} - {"\\Recent"}
    return out


def server_folders(server: RunningServer, user: str = "alice") -> set[str]:
    with imap(server, user) as c:
        return {name for _flags, _delim, name in c.list_folders()}


def maildir_contents(path: Path) -> dict[str, str]:
    """Subject -> Maildir flag letters (e.g. "FS") of every message in the Maildir at path."""
    md = mailbox.Maildir(str(path), factory=None, create=False)
    out: dict[str, str] = {}
    for key in md.iterkeys():
        msg = md.get_message(key)
        subject = subject_of(msg.as_bytes())
        assert subject not in out, f"duplicate message {subject!r} in {path}"
        out[subject] = "".join(sorted(msg.get_flags()))
    return out


def maildir_files(path: Path) -> dict[str, Path]:
    """Subject -> file of every message in the Maildir at path."""
    out: dict[str, Path] = {}
    for sub in ("new", "cur"):
        for file in (path / sub).iterdir():
            out[subject_of(file.read_bytes())] = file
    return out


def maildir_deliver(path: Path, raw: bytes, flags: str = "") -> None:
    md = mailbox.Maildir(str(path), factory=None, create=True)
    msg = mailbox.MaildirMessage(raw)
    if flags:
        msg.set_subdir("cur")
        msg.set_flags(flags)
    md.add(msg)


def set_maildir_flags(file: Path, flags: str) -> Path:
    """Rename a Maildir message into cur/ with exactly ``flags`` (as a MUA does)."""
    base = file.name.split(":2,")[0]
    target = file.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
    file.rename(target)
    return target
