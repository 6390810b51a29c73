"""SIGKILL during writes: the database stays intact and no acknowledged commit is lost."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors.store import open_store

REPO = Path(__file__).resolve().parents[2]

# Writes one transaction per sequence number, forever (up to a bound): a
# system_state row "seq:N" holding n, plus n bars rows for symbol "SN" in the
# same transaction; every third one durable. Prints N once COMMIT has returned.
WRITER = """
import asyncio, json, sys
from pathlib import Path
from actors.store import open_store

async def main(path, start):
    store = await open_store(Path(path))
    try:
        for seq in range(start, start + 100_000):
            n = seq % 25 + 1
            async with store.transaction(durable=seq % 3 == 0) as conn:
                await conn.execute(
                    "INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, 't')",
                    (f"seq:{seq}", json.dumps(n)),
                )
                await conn.executemany(
                    "INSERT INTO bars (provider, symbol, date, open, high, low, close, volume)"
                    " VALUES ('crash', ?, ?, 1, 1, 1, 1, 1)",
                    [(f"S{seq}", f"{i:04d}") for i in range(n)],
                )
            sys.stdout.write(f"{seq}\\n")
            sys.stdout.flush()
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

KILLS_PER_SEED = 5


def run_and_kill(path: Path, start: int, kill_after: int) -> list[int]:
    """Start a writer, SIGKILL it after ``kill_after`` acknowledgements; all it acknowledged."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        acked: list[int] = []
        try:
            while len(acked) < kill_after:
                line = child.stdout.readline()
                assert line, f"writer died on its own: {child.stderr.read()}"
                acked.append(int(line))
        finally:
            child.send_signal(signal.SIGKILL)
        # Whatever it printed before the signal landed was acknowledged too.
        acked.extend(int(line) for line in child.stdout.read().split())
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return acked


async def check(path: Path, acknowledged: set[int]) -> None:
    store = await open_store(path)
    try:
        assert await store.integrity_check() == "ok"
        rows = await store.fetchall(
            "SELECT CAST(substr(s.key, 5) AS INTEGER) AS seq, CAST(s.value AS INTEGER) AS n,"
            " (SELECT count(*) FROM bars b WHERE b.provider = 'crash'"
            "  AND b.symbol = 'S' || substr(s.key, 5)) AS bars"
            " FROM system_state s WHERE s.key LIKE 'seq:%'"
        )
        present = {r["seq"] for r in rows}
        assert acknowledged <= present, f"lost commits: {sorted(acknowledged - present)}"
        torn = [(r["seq"], r["n"], r["bars"]) for r in rows if r["n"] != r["bars"]]
        assert torn == [], "half-applied transactions"
        orphans = await store.fetchall(
            "SELECT DISTINCT symbol FROM bars WHERE provider = 'crash'"
            " AND 'seq:' || substr(symbol, 2) NOT IN (SELECT key FROM system_state)"
        )
        assert orphans == [], "bars without their transaction's state row"
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_sigkill_during_writes_loses_no_acknowledged_commit(
    seed: int, tmp_path: Path
) -> None:
    """Repeated SIGKILLs mid-write leave an intact database holding every acknowledged commit."""
    rng = random.Random(seed)
    path = tmp_path / "state" / "tradingd.db"
    acknowledged: set[int] = set()
    for round_no in range(KILLS_PER_SEED):
        acked = run_and_kill(path, start=round_no * 1_000_000, kill_after=rng.randint(1, 400))
        assert acked
        acknowledged.update(acked)
        await check(path, acknowledged)
