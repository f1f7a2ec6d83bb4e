"""IMAP4rev2 (RFC 9051) and UIDONLY (RFC 9586) through a real server: the transcripts of
tests/transcripts/rev2/ and real clients (imaplib, imapclient). IMAP4rev2 is advertised
only behind `imapd.rev2.ADVERTISE_IMAP4REV2` (off until BINARY lands): these tests turn it
on for their server (in-process, so the flag is read by it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imapd import rev2
from tests.helpers.server import RunningServer
from tests.helpers.transcript import run_transcript

HERE = Path(__file__).parent.parent / "transcripts" / "rev2"
TRANSCRIPTS = sorted(HERE.glob("*.imap"))


@pytest.fixture
def advertised(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rev2, "ADVERTISE_IMAP4REV2", True)
    yield


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(advertised: None, server: RunningServer, path: Path) -> None:
    run_transcript(server, path)
