"""Execute a sweep: the runs not yet in the store go to workers; the client writes each result.

Backends
--------
``local`` (default)
    ``workers=1`` runs in this process; ``workers=N`` uses a ``concurrent.futures``
    process pool started by a *forkserver* that imports bayesloss once: workers are forked
    from it (cheap, and never from a process already running torch threads), instead of each
    importing torch, Pyro and scikit-learn again (3× slower to start on 2 cores).
``dask``
    A ``distributed.LocalCluster`` of ``workers`` single-threaded processes, or an existing
    cluster when ``scheduler="tcp://host:port"``. Its workers need bayesloss importable.

Whatever the backend, workers only compute :func:`~bayesloss.experiments.run.run_one`; the
client alone writes the store, one transaction per finished run, as results arrive. A sweep
stopped at any moment (Ctrl-C, SIGKILL, a lost cluster) resumes by running it again: finished
runs are skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd

from ..console import progress_bar, show_progress
from ..engine.policy import entry_point
from ..optional import available, require
from .config import SweepConfig
from .grid import expand
from .run import run_one
from .store import RunStore

BACKENDS = ("local", "dask")


def _exit_with(client_pid: int) -> None:
    """Worker initialiser: leave when the client dies. A client killed by SIGKILL cannot shut
    its pool down, and its orphaned workers would otherwise wait for work forever."""

    def watch():
        while True:
            time.sleep(0.5)
            try:
                os.kill(client_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="client-watch").start()


def _local(todo, workers):
    if workers == 1:
        yield from map(run_one, todo)
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["bayesloss.experiments.run"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_exit_with,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_one, run) for run in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:  # interrupted: drop what has not started
            for f in futures:
                f.cancel()


def _dask(todo, workers, scheduler):
    from distributed import Client, LocalCluster, as_completed as dask_completed

    if scheduler:
        cluster, client = None, Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        # pure=False: a run's id is ours; the store, not Dask's cache, decides what is done
        futures = client.map(run_one, todo, pure=False, key=[f"run-{r['run_id']}" for r in todo])
        for future in dask_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@entry_point
def run_sweep(
    config: SweepConfig,
    out,
    *,
    workers: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    export: tuple | None = None,
) -> pd.DataFrame:
    """Run every run of ``config`` not yet stored in ``OUT/runs.sqlite``; return the table.

    Parameters
    ----------
    config:
        A validated :class:`~bayesloss.experiments.config.SweepConfig`.
    out:
        The output directory (created); a store there written by another config is refused
        (:class:`~bayesloss.experiments.store.StoreMismatchError`).
    workers, backend, scheduler:
        See the module docstring; ``scheduler`` implies ``backend="dask"``.
    retry_failed:
        Run the ``failed`` runs again (their rows are replaced); by default they count as
        finished.
    progress:
        A tqdm bar with the runs done, the failures and the ETA, then a line with the rate;
        default: on a terminal or in a notebook (never into a pipe or a log file).
    export:
        Formats written after the sweep (``OUT/runs.csv``, ``OUT/runs.parquet``); default
        CSV, and Parquet too where pyarrow is installed.

    Raises
    ------
    MissingExtraError
        The Dask backend without dask installed, or Parquet asked for without pyarrow; raised
        before anything is written (no OUT directory is created).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid names are {list(BACKENDS)}")
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1; got {workers}")
    if scheduler:
        backend = "dask"
    # a missing optional engine fails here, before OUT exists, rather than after the runs
    if backend == "dask":
        require("distributed", "the Dask backend (--backend dask, --scheduler)")
    if export is None:
        export = ("csv", "parquet") if available("pyarrow") else ("csv",)
    elif "parquet" in export:
        require("pyarrow", "Parquet export")
    runs = expand(config)
    with RunStore(out, config) as store:
        finished = store.finished(include_failed=not retry_failed)
        todo = [r for r in runs if r["run_id"] not in finished]
        results = _local(todo, workers) if backend == "local" else _dask(todo, workers, scheduler)
        failed = 0
        progress = show_progress(progress)
        bar = progress_bar(total=len(runs), initial=len(runs) - len(todo), disable=not progress,
                   desc=config.sweep.name, unit="run", dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for row in results:
                store.write(row)
                failed += row["status"] == "failed"
                bar.update()
                bar.set_postfix(failed=failed, refresh=False)
        finally:
            bar.close()
            results.close()  # a generator: shuts its pool / cluster down on interruption too
        elapsed = time.perf_counter() - start
        if progress and todo:
            print(f"{config.sweep.name}: {len(todo)} runs in {elapsed:.1f} s "
                  f"({len(todo) / elapsed:.2f} runs/s, {failed} failed); "
                  f"{len(runs) - len(todo)} already stored")
        if export:
            store.export(export)
        return store.table()
