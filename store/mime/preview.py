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
   each block-level tag (stdlib `html.parser`: linear, never raises on bad markup);
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


#: Tags whose text is not shown, and inline tags that do not separate words.
_HIDDEN = frozenset({"head", "script", "style", "title", "template"})
_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "em", "font", "i", "kbd", "mark",
     "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "tt", "u", "var"}
)  # fmt: skip
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9]{0,31})")


def _html_text(html: str) -> str:
    """The text of an HTML document: one pass of `str.find`, so linear on any input (the
    stdlib's html.parser took 25 s for 64 KiB of unclosed tags on Python 3.11). Tags and
    comments go, each tag but an inline one leaves a space, the contents of `_HIDDEN`
    elements go, entities are decoded; an unclosed tag or comment ends the text."""
    out: list[str] = []
    hidden: str | None = None  # the _HIDDEN element we are in
    i, n = 0, len(html)
    while i < n:
        lt = html.find("<", i)
        if lt < 0:
            lt = n
        if hidden is None:
            out.append(html[i:lt])
        if lt >= n:
            break
        if html.startswith("<!--", lt):
            end = html.find("-->", lt + 4)
            i = n if end < 0 else end + 3
            continue
        m = _TAG_NAME.match(html, lt + 1)
        if m is None and not html.startswith(("<!", "<?"), lt):
            if hidden is None:
                out.append("<")  # a lone "<" is text
            i = lt + 1
            continue
        gt = html.find(">", lt + 1)
        if gt < 0:
            break
        i = gt + 1
        if m is None:  # <!DOCTYPE ...>, <?xml ...?>
            continue
        tag = m.group(1).lower()
        closing = m.group(0).startswith("/")
        if hidden is not None:
            if (closing and tag == hidden) or (tag == "body" and hidden == "head"):
                hidden = None
            continue
        if not closing and tag in _HIDDEN:
            hidden = tag
        if tag not in _INLINE:
            out.append(" ")
    return html_module.unescape("".join(out))
