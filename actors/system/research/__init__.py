"""Research at scale: parameter sweeps, Optuna searches and walk-forward runs on Dask.

Every combination is one ``actors.system.backtest.run_backtest`` (the same
``simulated_graph()`` as ``tradingd backtest``) run as a Dask task in a worker
process, into ``DIR/runs/<combination id>/``; its metrics are read from that run's
``stats.json``, never recomputed. ``grid`` parses ``--param``, ``tasks`` is what
runs in a worker, ``runner`` submits and gathers, ``cluster`` connects to Dask,
``sweep``, ``search`` and ``walkforward`` are the three commands, ``results``,
``heatmap`` and ``report`` their outputs.
"""
