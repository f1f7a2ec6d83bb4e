"""A message's preview text (RFC 8970 §3.3): a few words of its body for message lists.

Owns: `preview_text`, computed once per stored message (at APPEND, delivery, import; lazily
at the first FETCH PREVIEW for messages stored before the store kept previews). Pure and
stdlib only; imports nothing of imapd, notify or the backends.

The algorithm (RFC 8970 leaves it to the server):
1. the first text/plain or text/html part, depth first in message order (inside
   multiparts and encapsulated messages), that is not a ``Content-Disposition:
   attachment``; none (an image, an encrypted message) gives "" (§3.2: "MUST return a
   zero-length string");
2. at most `ENCODED_LIMIT` octets of its body (`HTML_LIMIT` for HTML, whose markup is
   bulky), transfer encoding undone (store/mime/transfer.py; an unknown one gives ""),
   charset decoded with replacement characters;
3. HTML: text outside <head>, <script>, <style> and comments, entities decoded, a space for
   each tag that is not inline (`_html_text`: linear on any input, never raises);
4. white space runs (Unicode's, no-break space included) become one space, control and
   invisible characters (zero-width spaces used as e-mail "preheader" padding) go;
5. at most `LENGTH` characters (§3.3: SHOULD 200, MUST NOT exceed 256). Characters are
   Unicode code points, so no UTF-8 sequence is ever cut.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Iterable

from store.mime.bodystructure import BodyPart, structure_from_json
from store.mime.headers import decode_charset
from store.mime.transfer import decode_transfer

#: RFC 8970 §3.3: the server SHOULD limit the preview to 200 characters (MUST NOT: 256).
LENGTH = 200
#: Octets of a text/plain body read for a preview: 200 characters are at most 800 octets
#: of UTF-8, 1,100 of base64; the rest allows for white space and quoted-printable.
ENCODED_LIMIT = 16 * 1024
#: ... and of a text/html body (markup, style sheets and scripts come first).
HTML_LIMIT = 32 * 1024

_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad\u180e")


def preview_text(raw: bytes, structure: BodyPart) -> str:
    """The preview of the message ``raw`` parsed into ``structure`` (see the module)."""
    source = preview_source(structure)
    if source is None:
        return ""
    part, start, end = source
    return preview_of(raw[start:end], part)


def preview_source(structure: BodyPart) -> tuple[BodyPart, int, int] | None:
    """The part a preview is made of and the octets of the message to read for it (offsets
    into the raw message, at most `ENCODED_LIMIT` or `HTML_LIMIT` of its body): a store
    computing a preview later reads only these. None: no text to show (a preview of "")."""
    part = _first_text(structure)
    if part is None:
        return None
    limit = HTML_LIMIT if part.subtype == "html" else ENCODED_LIMIT
    return part, part.body_start, min(part.body_end, part.body_start + limit)


def preview_sources(
    structures: Iterable[tuple[int, str]],
) -> dict[int, tuple[BodyPart, int, int] | None]:
    """`preview_source` of each stored structure (JSON, by contents id): what a store
    computing missing previews reads; JSON decoding grows with the parts, so a store runs
    this off the event loop for many or big ones."""
    return {key: preview_source(structure_from_json(text)) for key, text in structures}


def preview_of(body: bytes, part: BodyPart) -> str:
    """The preview from ``body``, the octets `preview_source` named for ``part``."""
    data = decode_transfer(body, part.encoding)
    if data is None:
        return ""
    text = decode_charset(data, part.param("charset") or "")
    if len(body) < part.body_end - part.body_start:  # cut: a partial character is U+FFFD
        text = text.rstrip("\ufffd")
    if part.subtype == "html":
        text = _html_text(text)
    return _normalised(text)


def _first_text(top: BodyPart) -> BodyPart | None:
    stack = [top]
    while stack:
        part = stack.pop()
        if part.parts:
            stack.extend(reversed(part.parts))
        elif part.message is not None and part.is_message:
            stack.append(part.message)
        elif (
            part.type == "text"
            and part.subtype in ("plain", "html")
            and (part.disposition is None or part.disposition[0].lower() != "attachment")
        ):
            return part
    return None


def _normalised(text: str) -> str:
    words: list[str] = []
    length = 0
    for word in text.split():  # str.split: every Unicode white space, NBSP included
        if not word.isprintable() or not _INVISIBLE.isdisjoint(word):  # rare: char by char
            word = "".join(ch for ch in word if _visible(ch))
            if not word:
                continue
        words.append(word)
        length += len(word) + 1
        if length > LENGTH:
            break
    return " ".join(words)[:LENGTH].rstrip()


def _visible(ch: str) -> bool:
    """Not a control, format, private-use or unassigned character (str.isprintable), nor
    one of the invisible ones that pad e-mail preheaders."""
    return ch.isprintable() and ch not in _INVISIBLE


#: Where the text stops being shown: a comment, or an element whose contents are no text.
_HIDDEN_START = re.compile(r"<!--|<(head|script|style|title|template)(?![A-Za-z0-9])", re.I)
#: Where each such element ends (a <head> left open ends at <body>, which is kept).
_HIDDEN_END = {
    name: re.compile(
        rf"</{name}\s*>" + (r"|(?=<body(?![A-Za-z0-9]))" if name == "head" else ""), re.I
    )
    for name in ("head", "script", "style", "title", "template")
}
#: Inline tags, which do not separate words, and every other tag (or <!DOCTYPE>, <?xml?>),
#: which does. No "<" inside a tag: each attempt stops at the next "<", so the scan is linear.
_INLINE_TAG = re.compile(
    r"</?(?:a|abbr|b|bdi|bdo|big|cite|code|em|font|i|kbd|mark|q|s|samp|small|span|strike"
    r"|strong|sub|sup|tt|u|var)(?![A-Za-z0-9])[^<>]*>",
    re.I,
)
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")


def _html_text(html: str) -> str:
    """The text of an HTML document: comments and the contents of head, script, style,
    title and template go (an unclosed one takes the rest), tags go (each but an inline one
    leaves a space), entities are decoded. Regular expressions without nested repetition
    and `str.find`, so linear on any input: the stdlib's html.parser took 25 s for 64 KiB
    of unclosed tags on Python 3.11, and a scanner stepping tag by tag in Python was 10x
    slower than this on ordinary mail."""
    shown: list[str] = []
    pos = 0
    while (m := _HIDDEN_START.search(html, pos)) is not None:
        shown.append(html[pos : m.start()])
        shown.append(" ")
        if m.group(1) is None:
            end = html.find("-->", m.end())
            pos = len(html) if end < 0 else end + 3
        else:
            closer = _HIDDEN_END[m.group(1).lower()].search(html, m.end())
            pos = len(html) if closer is None else closer.end()
    shown.append(html[pos:])
    text = _TAG.sub(" ", _INLINE_TAG.sub("", "".join(shown)))
    return html_module.unescape(text)
