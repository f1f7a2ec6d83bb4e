"""The PostgreSQL store (issue 18): `PostgresStore` on asyncpg. Only store/open.py imports
this package, lazily; asyncpg is the optional extra ``imapd[postgres]``."""
