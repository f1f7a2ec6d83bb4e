"""LMTP delivery (RFC 2033): the sans-IO protocol and its asyncio server."""
