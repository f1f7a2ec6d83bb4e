"""SORT and THREAD (RFC 5256, RFC 5957), as pure functions over `SortRecord` values.

Owns nothing with IO: the store builds one `SortRecord` per message from what APPEND stored
(the envelope) plus the References header, and the handlers call the functions here.

    collation.py  i;unicode-casemap (RFC 5051), the collation RFC 5256 §7 asks for
    subject.py    base subject extraction (RFC 5256 §2.1) and the reply/forward test
    records.py    `SortRecord`: sent date (§2.2), addresses, display names, message ids
    sorting.py    SORT keys (RFC 5256 §3, DISPLAYFROM/DISPLAYTO RFC 5957 §4)
    threads.py    THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3)

Imports nothing of imapd or notify.
"""
