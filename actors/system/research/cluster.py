"""The Dask client of a sweep: a ``LocalCluster`` by default, an existing cluster by address.

``--workers N`` (default: one per core) starts N single-threaded worker processes
on this machine (backtests are CPU-bound Python: one thread each, one process per
core). ``--scheduler tcp://HOST:PORT`` joins a cluster started with ``dask
scheduler`` and ``dask worker tcp://HOST:PORT``; before any task is sent, the
scheduler must answer within ``timeout`` seconds, at least one worker must be
connected, and every worker must run this tradingd version (a worker with
another one would compute other results, or none).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from daemon import __version__
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S: Final = 10.0


def default_workers() -> int:
    """One worker process per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def check_choice(workers: int | None, scheduler: str | None) -> None:
    """``--workers`` and ``--scheduler`` exclude each other; a worker count is positive."""
    if workers is not None and scheduler is not None:
        raise ConfigError(
            "--workers", "give --workers (a local cluster) or --scheduler (an existing one)"
        )
    if workers is not None and workers < 1:
        raise ConfigError("--workers", f"{workers}: at least 1")
    if scheduler is not None and not scheduler.strip():
        raise ConfigError("--scheduler", "an empty address (expected tcp://HOST:PORT)")


@contextmanager
def dask_client(
    *, workers: int | None, scheduler: str | None, timeout: float = CONNECT_TIMEOUT_S
) -> Iterator[Client]:
    """A client on a new local cluster (closed on exit) or on the cluster at ``scheduler``."""
    from distributed import Client, LocalCluster

    check_choice(workers, scheduler)
    if scheduler is not None:
        client = _connect(scheduler.strip(), timeout)
        try:
            yield client
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # its health and metrics pages; 8787 may be taken
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_count(client: Client) -> int:
    """The workers connected now (a batch of Optuna trials is this many)."""
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))


def _connect(address: str, timeout: float) -> Client:
    from distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            "--scheduler",
            f"no Dask scheduler answered at {address} within {timeout:g} s ({why})",
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ConfigError(
                "--scheduler", f"the scheduler at {address} has no worker after {timeout:g} s"
            ) from None
        _check_versions(client, address)
    except BaseException:
        client.close()
        raise
    return client


def _check_versions(client: Client, address: str) -> None:
    try:
        versions: dict[str, str] = client.run(_tradingd_version)
    except Exception as exc:  # a worker that cannot import tradingd at all
        raise ConfigError(
            "--scheduler", f"a worker of {address} cannot run tradingd: {type(exc).__name__}: {exc}"
        ) from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        listed = ", ".join(f"{w} has {v}" for w, v in sorted(other.items()))
        raise ConfigError(
            "--scheduler",
            f"workers of {address} run another tradingd ({listed}; here {__version__})",
        )


def _tradingd_version() -> str:
    return __version__
