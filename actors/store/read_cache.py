"""The rows of a store's last reads, kept until a write to a table they come from.

For tables with one writer in the process: the simulated broker's ``sim_*`` tables
(``actors.store.sim_broker``), whose writer calls ``forget(table)`` before each
statement on a table and once more after the transaction for every table it wrote
(committed or rolled back). A read then costs a SQL query only the first time
after a write to one of its tables.

- One cache per ``Store`` (``cache_of``), shared by every reader of that store in
  the process, so a second broker on the same database (a test's, a restart's)
  never reads what the first one's write made stale.
- A read that was in flight while one of its tables was written is returned but
  not kept.
- Nothing is kept on disk: after a crash a new process starts with an empty
  cache and reads the tables, which stay the only truth.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from daemon.store.core import Store

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Key(Generic[T]):
    """One cached read: its name and the tables it reads; ``T`` is what it returns."""

    name: tuple[Hashable, ...]
    tables: tuple[str, ...]


class ReadCache:
    """Values of reads by key, forgotten by a write to one of their tables."""

    def __init__(self) -> None:
        self._everything = 0  # bumped by forget() of every table
        self._generations: dict[str, int] = {}
        self._values: dict[object, object] = {}
        self._by_table: dict[str, set[object]] = {}

    def forget(self, tables: Iterable[str] | None = None) -> None:
        """Drop the values read from ``tables`` (None: from every table); a read of
        them in flight now is not kept either."""
        if tables is None:
            self._everything += 1
            self._values.clear()
            self._by_table.clear()
            return
        for table in tables:
            self._generations[table] = self._generations.get(table, 0) + 1
            for key in self._by_table.pop(table, ()):
                self._values.pop(key, None)

    def get(self, key: Key[T]) -> T | None:
        """The cached value of ``key``, or None when there is none."""
        return cast("T | None", self._values.get(key))

    async def read(self, key: Key[T], load: Callable[[], Awaitable[T]]) -> T:
        """The cached value of ``key``; else ``load()``, kept unless one of its tables
        was written meanwhile."""
        if key in self._values:
            return cast(T, self._values[key])
        before = self._snapshot(key)
        value = await load()
        if self._snapshot(key) == before:
            self._values[key] = value
            for table in key.tables:
                self._by_table.setdefault(table, set()).add(key)
        return value

    def _snapshot(self, key: Key[T]) -> tuple[int, ...]:
        return (self._everything, *(self._generations.get(t, 0) for t in key.tables))


_CACHES: weakref.WeakKeyDictionary[Store, ReadCache] = weakref.WeakKeyDictionary()


def cache_of(store: Store) -> ReadCache:
    """The one read cache of ``store`` in this process."""
    cache = _CACHES.get(store)
    if cache is None:
        cache = _CACHES[store] = ReadCache()
    return cache
