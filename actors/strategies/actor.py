"""``StrategyActor``: one per strategy; turns a ``MarketSnapshot`` into ``Signals``.

The CPU work (screening, the ML fit) runs in a worker thread so the control
socket and metrics stay responsive. A strategy that raises yields a *failed*
``Signals`` for that strategy and cycle (counted toward the consecutive-failure
kill switch by the risk side), never a crashed cycle. The ML strategy's fitted
model is persisted with its training window and reloaded on start, so a
restart does not refit from scratch.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import structlog

from actors.messages import ApplySettings, GenerateSignals, GetStatus, Signals
from actors.metrics import Metrics
from actors.store.models import ModelStore, StoredModel
from actors.strategies.base import Strategy, StrategyContext
from actors.strategies.ml_momentum import MlMomentum, ModelState
from actors.strategies.params import StrategyParams
from actors.strategies.registry import STRATEGY_CLASSES
from daemon.actor import Actor, handles
from daemon.clock import Clock

log = structlog.get_logger()


class StrategyActor(Actor):
    def __init__(
        self,
        strategy_name: str,
        params: StrategyParams,
        *,
        clock: Clock,
        models: ModelStore | None = None,
        metrics: Metrics | None = None,
        strategy: Strategy | None = None,
    ) -> None:
        if strategy is None and strategy_name not in STRATEGY_CLASSES:
            raise ValueError(f"unknown strategy {strategy_name!r}")
        self.strategy_name = strategy_name
        self._params = params
        self._clock = clock
        self._models = models
        self._metrics = metrics
        self._strategy: Strategy = strategy or STRATEGY_CLASSES[strategy_name](params)
        self._last: dict[str, Any] = {}

    async def on_start(self) -> None:
        if isinstance(self._strategy, MlMomentum) and self._models is not None:
            stored = await self._models.latest(self.strategy_name)
            if stored is not None:
                try:
                    self._strategy.load_model_state(_to_state(stored))
                    log.info(
                        "model_loaded", strategy=self.strategy_name, trained_to=str(stored.train_to)
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("model_load_failed", strategy=self.strategy_name, error=str(exc))

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        return {"strategy": self.strategy_name, "enabled": self._params.enabled, **self._last}

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        params: StrategyParams = getattr(msg.settings.strategies, self.strategy_name)
        if params == self._params:
            return
        old_state = self._strategy.model_state() if isinstance(self._strategy, MlMomentum) else None
        self._params = params
        self._strategy = STRATEGY_CLASSES[self.strategy_name](params)
        if old_state is not None and isinstance(self._strategy, MlMomentum):
            self._strategy.load_model_state(old_state)
        log.info("strategy_params_applied", strategy=self.strategy_name)

    @handles(GenerateSignals)
    async def generate(self, msg: GenerateSignals) -> Signals:
        snap = msg.snapshot
        before = self._model_through()
        started = time.perf_counter()
        try:
            ctx = StrategyContext(
                asof=snap.asof,
                panel=snap.panel,
                indicators=snap.indicators,
                positions={p.symbol: p for p in msg.positions},
                capital=msg.capital or self._params.capital,
                risk_capital=msg.risk_capital or None,
                stop_atr_multiple=msg.stop_atr_multiple,
            )
            signals = await anyio.to_thread.run_sync(self._strategy.generate, ctx)
        except Exception as exc:  # a strategy bug fails this strategy's cycle, not the cycle
            elapsed = time.perf_counter() - started
            log.exception("strategy_failed", strategy=self.strategy_name, run_id=snap.run_id)
            if self._metrics is not None:
                self._metrics.strategy_failures.labels(strategy=self.strategy_name).inc()
            self._last = {"last_run": snap.run_id, "last_error": f"{type(exc).__name__}: {exc}"}
            return Signals(
                snap.run_id,
                snap.asof,
                self.strategy_name,
                (),
                error=f"{type(exc).__name__}: {exc}",
                duration_s=elapsed,
            )
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.strategy_seconds.labels(strategy=self.strategy_name).observe(elapsed)
        await self._persist_model(before)
        self._last = {
            "last_run": snap.run_id,
            "last_signals": len(signals),
            "last_error": None,
            "diagnostics": _jsonable(self._strategy.diagnostics()),
        }
        return Signals(snap.run_id, snap.asof, self.strategy_name, tuple(signals), None, elapsed)

    def _model_through(self) -> object:
        if isinstance(self._strategy, MlMomentum):
            state = self._strategy.model_state()
            return state.trained_through if state else None
        return None

    async def _persist_model(self, before: object) -> None:
        if not isinstance(self._strategy, MlMomentum) or self._models is None:
            return
        state = self._strategy.model_state()
        if state is None or state.trained_through == before:
            return
        await self._models.save(
            StoredModel(
                strategy=self.strategy_name,
                trained_at=self._clock.now(),
                train_from=state.train_from,
                train_to=state.trained_through,
                n_rows=state.n_rows,
                params=state.summary(),
                blob=state.pickled,
            )
        )
        log.info(
            "model_trained",
            strategy=self.strategy_name,
            train_from=str(state.train_from),
            train_to=str(state.trained_through),
            rows=state.n_rows,
        )


def _to_state(stored: StoredModel) -> ModelState:
    p = stored.params
    return ModelState(
        trained_through=stored.train_to,
        train_from=stored.train_from,
        n_rows=stored.n_rows,
        features=tuple(p["features"]),
        horizon_days=int(p["horizon_days"]),
        coefficients=tuple((str(k), float(v)) for k, v in p["coefficients"].items()),
        intercept=float(p["intercept"]),
        positive_rate=float(p["positive_rate"]),
        pickled=stored.blob,
    )


def _jsonable(value: object) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
