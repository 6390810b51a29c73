"""ReadCache: a read is a query only the first time after a write to one of its tables."""

from __future__ import annotations

import asyncio

from actors.store.read_cache import Key, ReadCache, cache_of
from daemon.store import Store

ROWS: Key[tuple[int, ...]] = Key(("rows",), ("a",))
BOTH: Key[tuple[int, ...]] = Key(("both",), ("a", "b"))
OTHER: Key[tuple[int, ...]] = Key(("other",), ("b",))


class Loader:
    """A load that counts its calls and returns what ``value`` holds then."""

    def __init__(self, value: tuple[int, ...]) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> tuple[int, ...]:
        self.calls += 1
        return self.value


async def test_a_second_read_is_served_from_the_cache() -> None:
    """Without a write in between, the load runs once."""
    cache, load = ReadCache(), Loader((1, 2))
    assert await cache.read(ROWS, load) == (1, 2)
    load.value = (3,)
    assert await cache.read(ROWS, load) == (1, 2)
    assert load.calls == 1
    assert cache.get(ROWS) == (1, 2)
    assert cache.get(OTHER) is None


async def test_a_write_to_a_table_forgets_the_reads_of_it_only() -> None:
    """Forgetting a table drops every read of it and keeps the reads of other tables."""
    cache = ReadCache()
    for key in (ROWS, BOTH, OTHER):
        await cache.read(key, Loader((1,)))
    cache.forget(["b"])
    assert cache.get(ROWS) == (1,)
    assert cache.get(BOTH) is None
    assert cache.get(OTHER) is None
    load = Loader((2,))
    assert await cache.read(OTHER, load) == (2,)
    cache.forget()
    assert cache.get(ROWS) is None
    assert cache.get(OTHER) is None


async def test_a_read_in_flight_across_a_write_to_its_table_is_not_kept() -> None:
    """A read that started before a write to its table is answered, but not kept."""
    cache = ReadCache()
    gates = {name: asyncio.Event() for name in ("rows", "other")}

    def slow(name: str) -> Loader:
        class Slow(Loader):
            async def __call__(self) -> tuple[int, ...]:
                await gates[name].wait()
                return (1,)

        return Slow(())

    rows = asyncio.create_task(cache.read(ROWS, slow("rows")))
    other = asyncio.create_task(cache.read(OTHER, slow("other")))
    await asyncio.sleep(0)
    cache.forget(["a"])
    for gate in gates.values():
        gate.set()
    assert await rows == (1,)
    assert await other == (1,)
    assert cache.get(ROWS) is None
    assert cache.get(OTHER) == (1,)


async def test_a_store_has_one_cache(store: Store) -> None:
    """Every reader of the same store gets the same cache, so one's write is everyone's."""
    assert cache_of(store) is cache_of(store)
    assert cache_of(store) is not ReadCache()
