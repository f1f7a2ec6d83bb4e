"""`imapd notifyd --method webhook` end to end: a real server, the listener as a process of its
own, a real HTTP receiver; an IMAP APPEND becomes a signed POST; events committed while the
listener was down arrive after its restart, from the outbox, once each."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notify import cyrus, webhook
from notify.cyrus import SEQ_PARAM
from tests.e2e.messages import numbered
from tests.helpers.imap import client
from tests.helpers.server import RunningServer
from tests.notify.listener import Listener
from tests.notify.receiver import Receiver

SECRET = "hook-secret"
EXTRA = (*cyrus.DEFAULT_EXTRA_PARAMS, SEQ_PARAM)

Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def path() -> Iterator[str]:
    lis = Listener(bind=False)  # only its short socket path
    yield lis.path
    lis.cleanup()


@pytest.fixture
def start_hook(receiver: Receiver, path: str, tmp_path: Path) -> Iterator[Start]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "notifyd",
                "--socket",
                path,
                "--method",
                "webhook",
                "--url",
                receiver.url,
                "--secret",
                SECRET,
                "--state",
                str(tmp_path / "hook.state"),
                "--retry-max",
                "0.5",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        assert proc.stderr is not None
        for line in proc.stderr:  # readiness: its "listening on" log line
            if b"listening on" in line:
                return proc
        raise RuntimeError("webhook listener did not start")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)


def wait_state(state: Path, seq: int) -> None:
    """Until the state file holds ``seq`` (saved once the receiver's answer is in)."""
    deadline = time.monotonic() + 10
    while not state.exists() or json.loads(state.read_text())["seq"] != seq:
        assert time.monotonic() < deadline, state.read_text() if state.exists() else None
        time.sleep(0.01)


def check_signed(req: Any) -> None:
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-imapd-signature"] == webhook.sign(SECRET.encode(), req.body)
    assert req.headers["x-imapd-seq"] == str(req.events()[-1][SEQ_PARAM])


def test_append_becomes_a_signed_post(
    server_factory: Any, receiver: Receiver, path: str, start_hook: Start, tmp_path: Path
) -> None:
    start_hook()
    server: RunningServer = server_factory(notify_socket=path, event_extra_params=EXTRA)
    server.add_user("alice")
    c = client(server)
    c.append("INBOX", numbered(1))
    reqs = receiver.wait(6 + 2)
    names = [r.json()["event"] for r in reqs]
    assert names == ["MailboxCreate"] * 6 + ["Login", "MessageAppend"]
    append = reqs[-1]
    check_signed(append)
    body = append.json()
    assert body["uri"].startswith("imap://alice@localhost/INBOX;UIDVALIDITY=")
    assert body["uri"].endswith("/;UID=1")
    seqs = [r.json()[SEQ_PARAM] for r in reqs]
    assert seqs == sorted(seqs)
    c.logout()
    wait_state(tmp_path / "hook.state", receiver.wait(9)[8].json()[SEQ_PARAM])


def test_batches_from_a_real_server(
    server_factory: Any, receiver: Receiver, path: str, start_hook: Start
) -> None:
    start_hook("--batch", "50")
    server: RunningServer = server_factory(notify_socket=path, event_extra_params=EXTRA)
    server.add_user("alice")
    events = receiver.events(6)
    assert [e["event"] for e in events] == ["MailboxCreate"] * 6
    for req in receiver.requests:
        check_signed(req)
        assert "events" in req.json()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_restart_delivers_what_was_committed_while_down_once(
    server_factory: Any,
    receiver: Receiver,
    path: str,
    start_hook: Start,
    tmp_path: Path,
    signum: int,
) -> None:
    data_dir = str(tmp_path / "data")
    server: RunningServer = server_factory(notify_socket=path, event_extra_params=EXTRA)
    server.add_user("alice")  # before the first start: history it does not replay
    hook = start_hook("--data-dir", data_dir)
    c = client(server)
    c.append("INBOX", numbered(1))
    first = receiver.wait(2)
    assert [r.json()["event"] for r in first] == ["Login", "MessageAppend"]
    wait_state(tmp_path / "hook.state", first[1].json()[SEQ_PARAM])  # else at least once
    # The socket is gone (or, after kill -9, refuses): the server's sink keeps the next
    # events in its outbox.
    hook.send_signal(signum)
    hook.wait(15)
    for i in range(2, 5):
        c.append("INBOX", numbered(i))
    again = start_hook("--data-dir", data_dir)
    caught_up = receiver.wait(5)[2:]
    assert [r.json()["event"] for r in caught_up] == ["MessageAppend"] * 3
    assert {r.json()["pid"] for r in caught_up} == {again.pid}  # rendered from the outbox
    assert [r.json()["uri"].rsplit("=", 1)[1] for r in caught_up] == ["2", "3", "4"]
    for req in caught_up:
        check_signed(req)
    # The server re-sends those three as datagrams once the socket is back: skipped. The
    # next POST is the next change.
    c.append("INBOX", numbered(5))
    (after,) = receiver.wait(6)[5:]
    assert after.json()["uri"].endswith("/;UID=5")
    c.logout()
    assert [r.json()["event"] for r in receiver.wait(7)][6:] == ["Logout"]
    assert len(receiver.requests) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "needs --url"),
        (("--url", "ftp://x/"), "http://"),
        (("--url", "http://127.0.0.1:9/", "--batch", "0"), "at least 1"),
    ],
)
def test_bad_webhook_arguments(
    path: str, args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from imapd.cli import main

    assert main(["notifyd", "--socket", path, "--method", "webhook", *args]) == 2
    assert message in capsys.readouterr().err


def test_seq_is_a_known_extra_param(tmp_path: Path) -> None:
    from imapd.config import load

    conf = tmp_path / "imapd.toml"
    conf.write_text(f'event_extra_params = ["timestamp", "{SEQ_PARAM}"]\n')
    assert load(conf).event_extra_params == ("timestamp", SEQ_PARAM)
