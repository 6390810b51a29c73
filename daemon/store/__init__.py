"""The runtime's database: one SQLite (WAL) connection, its lock, migrations runner, backups.

It holds no tables of its own: the application passes its schema as migrations
(``Store.open(path, migrations=...)``); the trading tables live in ``actors.store``.
"""

from daemon.store.core import Store, StoreLock

__all__ = ["Store", "StoreLock"]
