"""The storage toolkit the store and the receiver's inbox share.

- ``named``: SQL kept as named blocks in a package's ``.sql`` files, and the ``:name``
  parameters turned into asyncpg's ``$n``;
- ``errors``: the one table of driver errors (asyncpg, sqlite3) and the hookline errors
  they become;
- ``group``: group commit, many callers' work in one transaction.

It imports nothing of the layers that use it (store, receiver, sender, api, web, cli),
so each of them can use it without reaching into another.
"""
