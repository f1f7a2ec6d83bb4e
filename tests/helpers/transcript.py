"""Run one ``*.imap`` transcript (tests/transcripts/) against a real server.

Format (one line each; a first comment names the RFC section being specified):
- ``C: text`` / ``C2: text``: connection 1 / 2 sends ``text`` + CRLF (connections open and
  log in lazily: ``C2: LOGIN`` is not needed, see ``AS``).
- ``AS2: bob``: connection 2 logs in as bob (default: connection 1 is alice, logged in).
- ``S: text`` / ``S2: text``: the next logical response on that connection must match.
- ``Q2:``: connection 2 receives nothing for 300 ms.
- ``RAW: text``: connection 1 is NOT logged in automatically (put it first).
Patterns: ``{*}`` matches any text; ``{name}`` captures a token the first time it appears
and must be equal (in S lines) or is substituted (in C lines) afterwards.
Escapes in C lines: ``\\r\\n`` for CRLF inside a line, ``\\e`` for nothing (no CRLF at end).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

_LINE = re.compile(r"^(C|S|Q|AS)(\d*):\s?(.*)$")
_TOKEN = re.compile(r"\{(\*|[A-Za-z_][A-Za-z0-9_]*)\}")


def _pattern(text: str, captures: dict[str, str]) -> tuple[re.Pattern[str], list[str]]:
    out, names, pos = [], [], 0
    for m in _TOKEN.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        name = m.group(1)
        if name == "*":
            out.append(".*?")
        elif name in captures:
            out.append(re.escape(captures[name]))
        else:
            out.append(r"(\S+?)")
            names.append(name)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL), names


def _substitute(text: str, captures: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: captures.get(m.group(1), m.group(0)), text)


def run_transcript(server: RunningServer, path: Path) -> None:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    clients: dict[str, RawClient] = {}
    users: dict[str, str] = {}
    captures: dict[str, str] = {}
    raw_first = bool(lines) and lines[0].startswith("RAW:")
    if raw_first:
        lines = lines[1:]

    def client(n: str) -> RawClient:
        n = n or "1"
        if n not in clients:
            c = RawClient.connect(server.host, server.port)
            if n == "1" and raw_first:
                pass
            else:
                c.login(users.get(n, "alice"), PASSWORD)
            clients[n] = c
        return clients[n]

    try:
        for number, ln in enumerate(lines, 1):
            m = _LINE.match(ln)
            assert m, f"{path.name}:{number}: cannot read {ln!r}"
            kind, n, text = m.groups()
            where = f"{path.name}:{number}"
            if kind == "AS":
                users[n or "1"] = text.strip()
            elif kind == "C":
                data = _substitute(text, captures)
                if data.endswith("\\e"):
                    payload = data[:-2].replace("\\r\\n", "\r\n").encode()
                else:
                    payload = data.replace("\\r\\n", "\r\n").encode() + b"\r\n"
                client(n).send(payload)
            elif kind == "S":
                got = client(n).response()
                pattern, names = _pattern(text.replace("\\r\\n", "\r\n"), captures)
                match = pattern.match(got)
                assert match, f"{where}: expected {text!r}\n got      {got!r}"
                captures.update(zip(names, match.groups(), strict=True))
            elif kind == "Q":
                extra = client(n).quiet()
                assert not extra, f"{where}: expected nothing, got {extra!r}"
    finally:
        for c in clients.values():
            c.close()
