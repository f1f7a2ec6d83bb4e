"""MIME parsing of stored messages: pure functions over ``bytes``, no SQL, no I/O.

message.py parses a message once at APPEND into a `BodyPart` tree (bodystructure.py holds
the values and their JSON); headers.py reads header fields, envelope.py address lists,
text.py the decoded text SEARCH needs, sections.py cuts ``BODY[<section>]``. The names below
are the package's face; import the modules for the rest.
"""

from store.mime.message import (
    MAX_DEPTH,
    MAX_PARTS,
    MISSING_DOMAIN,
    MISSING_MAILBOX,
    PIECE,
    Address,
    BodyPart,
    Envelope,
    address_text,
    body_text,
    decode_words,
    header_values,
    message_id,
    parse_message,
    section_bytes,
    structure_from_json,
    structure_to_json,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "MISSING_DOMAIN",
    "MISSING_MAILBOX",
    "PIECE",
    "Address",
    "BodyPart",
    "Envelope",
    "address_text",
    "body_text",
    "decode_words",
    "header_values",
    "message_id",
    "parse_message",
    "section_bytes",
    "structure_from_json",
    "structure_to_json",
]
