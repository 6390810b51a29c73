"""Fitted models, persisted with the window they were trained on."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from daemon.store.core import Store


@dataclass(frozen=True, slots=True)
class StoredModel:
    strategy: str
    trained_at: dt.datetime
    train_from: dt.date
    train_to: dt.date
    n_rows: int
    params: dict[str, Any]
    blob: bytes


class ModelStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, model: StoredModel) -> None:
        await self._store.execute(
            "INSERT OR REPLACE INTO models (strategy, trained_at, train_from, train_to, n_rows,"
            " params_json, blob) VALUES (?,?,?,?,?,?,?)",
            (
                model.strategy,
                model.trained_at.isoformat(),
                model.train_from.isoformat(),
                model.train_to.isoformat(),
                model.n_rows,
                json.dumps(model.params, sort_keys=True, default=str),
                model.blob,
            ),
        )

    async def latest(self, strategy: str, *, before: dt.date | None = None) -> StoredModel | None:
        """The newest model for ``strategy`` (trained through a date before ``before``)."""
        if before is None:
            row = await self._store.fetchone(
                "SELECT * FROM models WHERE strategy = ? ORDER BY train_to DESC LIMIT 1",
                (strategy,),
            )
        else:
            row = await self._store.fetchone(
                "SELECT * FROM models WHERE strategy = ? AND train_to < ?"
                " ORDER BY train_to DESC LIMIT 1",
                (strategy, before.isoformat()),
            )
        if row is None:
            return None
        return StoredModel(
            strategy=row["strategy"],
            trained_at=dt.datetime.fromisoformat(row["trained_at"]),
            train_from=dt.date.fromisoformat(row["train_from"]),
            train_to=dt.date.fromisoformat(row["train_to"]),
            n_rows=int(row["n_rows"]),
            params=json.loads(row["params_json"]),
            blob=bytes(row["blob"]),
        )
