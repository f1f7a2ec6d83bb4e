"""Run every ``*.imap`` transcript in this folder against a real server (the format:
tests/helpers/transcript.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.server import RunningServer
from tests.helpers.transcript import run_transcript

HERE = Path(__file__).parent
TRANSCRIPTS = sorted(HERE.glob("*.imap"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(server: RunningServer, path: Path) -> None:
    run_transcript(server, path)


def test_transcripts_exist() -> None:
    assert TRANSCRIPTS, "no transcripts found"
