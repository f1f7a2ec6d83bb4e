"""A deterministic corpus of realistic messages for the benchmark (same bytes for every server).

Sizes are mostly 3-5 KB (5 % are short notes of 1.2-1.9 KB so that ``SMALLER 2000`` matches
something); 20 % are multipart/mixed with a small base64 attachment. Each message records the
facts the SEARCH phase checks its answers against (sender, marker word, flags, date, size).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: Words the searches look for. No generated text contains them by accident (checked below).
BODY_WORD = "zeppelin"
FROM_NAME = "carol"

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

_COMMON = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "meeting",
    "report",
    "budget",
    "project",
    "review",
    "schedule",
    "deadline",
    "draft",
    "invoice",
    "customer",
    "server",
    "release",
    "update",
    "team",
    "please",
    "thanks",
    "regards",
    "attached",
    "question",
    "answer",
    "tomorrow",
    "today",
    "week",
    "month",
    "quarter",
    "plan",
]

_SENDERS = [
    ("Carol Jansen", "carol.jansen@example.org"),
    ("Alice Martin", "alice@example.com"),
    ("Bob Okafor", "bob.okafor@example.net"),
    ("Dmitri Volkov", "dvolkov@example.org"),
    ("Eve Laurent", "eve@example.com"),
    ("Frank Moreau", "frank.m@example.net"),
    ("Grace Lindqvist", "grace@example.org"),
    ("Heidi Tanaka", "heidi.tanaka@example.com"),
    ("Ivan Petrov", "ivan@example.net"),
    ("Judy Nakamura", "judy@example.org"),
    ("Mallory Quinn", "mallory@example.com"),
    ("Newsletter", "news@lists.example.com"),
]
#: Carol sends ~8 % of the mail.
_SENDER_WEIGHTS = [8] + [92 / (len(_SENDERS) - 1)] * (len(_SENDERS) - 1)


@dataclass(slots=True, frozen=True)
class Message:
    data: bytes
    flags: str  # for APPEND, e.g. "\\Seen \\Flagged"
    internal_date: datetime  # noon UTC, so SINCE has no timezone edge cases
    from_carol: bool
    has_word: bool
    seen: bool
    flagged: bool

    @property
    def imap_date(self) -> str:
        d = self.internal_date
        return f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year} {d:%H:%M:%S} +0000"

    @property
    def size(self) -> int:
        return len(self.data)


def _syllable_words(rng: random.Random, n: int) -> list[str]:
    cons = [
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "j",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "z",
        "br",
        "ch",
        "cr",
        "dr",
        "fl",
        "gr",
        "pl",
        "sh",
        "st",
        "th",
        "tr",
    ]
    vows = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "io", "ou"]
    words: set[str] = set()
    while len(words) < n:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 3)))
        if BODY_WORD not in w and FROM_NAME not in w:
            words.add(w)
    return sorted(words)


def _rfc2822_date(d: datetime) -> str:
    return f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} {d:%H:%M:%S} +0000"


class Corpus:
    """``Corpus(seed).generate(n)`` always yields the same n messages for the same seed."""

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        self.vocab = _COMMON * 4 + _syllable_words(rng, 1500)

    def generate(self, n: int, *, first: int = 0) -> list[Message]:
        return [self._one(i) for i in range(first, first + n)]

    def _sentence(self, rng: random.Random, word: bool) -> str:
        words = rng.choices(self.vocab, k=rng.randint(6, 18))
        if word:
            words.insert(rng.randrange(len(words) + 1), BODY_WORD)
        s = " ".join(words)
        return s[0].upper() + s[1:] + rng.choice(".....?!")

    def _paragraphs(self, rng: random.Random, target: int, word: bool) -> str:
        lines: list[str] = []
        size = 0
        word_at = rng.randrange(max(1, target // 400)) if word else -1
        para = 0
        while size < target:
            sentences = [
                self._sentence(rng, word and para == word_at and k == 0)
                for k in range(rng.randint(2, 6))
            ]
            text = " ".join(sentences)
            line = ""
            for w in text.split(" "):
                if len(line) + len(w) + 1 > 72:
                    lines.append(line)
                    size += len(line) + 2
                    line = w
                else:
                    line = f"{line} {w}" if line else w
            lines.append(line)
            lines.append("")
            size += len(line) + 4
            para += 1
        if word and para <= word_at:  # the marker paragraph fell past the end: add it
            lines.append(self._sentence(rng, True))
        return "\r\n".join(lines)

    def _one(self, i: int) -> Message:
        rng = random.Random(self.seed * 1_000_003 + i)  # noqa: S311
        name, addr = rng.choices(_SENDERS, weights=_SENDER_WEIGHTS)[0]
        to_name, to_addr = "Bench User", "bench@example.test"
        has_word = rng.random() < 0.04
        seen = rng.random() < 0.75
        flagged = rng.random() < 0.03
        small = rng.random() < 0.05
        multipart = not small and rng.random() < 0.20
        target = rng.randint(1200, 1900) if small else rng.randint(3000, 5000)
        start = datetime(2018, 1, 1, 12, 0, 0, tzinfo=UTC)
        date = start + timedelta(days=rng.randrange(7 * 365))
        sent = date - timedelta(seconds=rng.randrange(1, 6 * 3600))
        subject = " ".join(rng.choices(_COMMON, k=rng.randint(2, 7))).capitalize()
        headers = [
            f"Return-Path: <{addr}>",
            f"Received: from mx{rng.randint(1, 9)}.example.org"
            f" (mx.example.org [192.0.2.{i % 250 + 1}])"
            f"\r\n\tby mail.example.test with ESMTPS id {rng.getrandbits(40):010x}"
            f"\r\n\tfor <{to_addr}>; {_rfc2822_date(date)}",
            f'From: "{name}" <{addr}>',
            f'To: "{to_name}" <{to_addr}>',
            f"Subject: {subject}",
            f"Date: {_rfc2822_date(sent)}",
            f"Message-ID: <{i}.{rng.getrandbits(48):012x}@example.org>",
            "MIME-Version: 1.0",
        ]
        if rng.random() < 0.3:
            headers.insert(5, f"Cc: {rng.choice(_SENDERS[1:])[1]}")
        head_len = sum(len(h) + 2 for h in headers)
        if multipart:
            boundary = f"=_bench_{rng.getrandbits(64):016x}"
            blob = rng.randbytes(rng.randint(600, 1200))
            b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
            fname = f"{rng.choice(_COMMON)}-{rng.randint(1, 99)}.pdf"
            attach = (
                f"--{boundary}\r\n"
                f'Content-Type: application/pdf; name="{fname}"\r\n'
                "Content-Transfer-Encoding: base64\r\n"
                f'Content-Disposition: attachment; filename="{fname}"\r\n\r\n'
                f"{b64}\r\n--{boundary}--\r\n"
            )
            text_target = max(600, target - head_len - len(attach) - 200)
            body = (
                "This is a multi-part message in MIME format.\r\n\r\n"
                f"--{boundary}\r\n"
                'Content-Type: text/plain; charset="us-ascii"\r\n'
                "Content-Transfer-Encoding: 7bit\r\n\r\n"
                f"{self._paragraphs(rng, text_target, has_word)}\r\n{attach}"
            )
            headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        else:
            headers.append('Content-Type: text/plain; charset="us-ascii"')
            headers.append("Content-Transfer-Encoding: 7bit")
            body = self._paragraphs(rng, max(400, target - head_len - 60), has_word) + "\r\n"
        data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")
        flags = " ".join(f for f, on in (("\\Seen", seen), ("\\Flagged", flagged)) if on)
        return Message(
            data, flags, date, name.lower().startswith(FROM_NAME), has_word, seen, flagged
        )
