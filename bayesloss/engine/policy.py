"""The caller's state is theirs: what one library call saves, sets and restores around itself.

Fits seed the global random streams (``seed=`` makes them reproducible) and build their
parameters in Pyro's param store. Around each public entry point, :func:`caller_state` saves
the caller's Python ``random`` state, numpy's global ``RandomState``, torch's CPU generator and
Pyro param store (the fit runs in an empty store scope: the caller's params stay untouched and
invisible to it), and their torch intra-op and BLAS thread counts, and restores them all
afterwards, whatever happens inside.

Threads are a policy of the engine: below :data:`PARALLEL_WORK` elements of data a call runs
single-threaded (torch and numpy's BLAS), at and above it with the caller's setting. On the
2-core machine this was measured on, a second thread made every fit slower: 2.5× at
n = 100,000, d = 20 on the idle machine (gaussian MLE, 42 vs 17 ms); under load (load average
8–12), gaussian MLE 5.7× at n = 1,000, 16.8× at 100,000, 4.1× at 1,000,000 (659 vs 2,672 ms),
logistic MLE 9.8× at 100,000 and 2.6× at 1,000,000 (d = 20 throughout). The gap narrows with n
but never closed up to n·d = 2·10⁷, the largest size measured; the threshold sits above it and
larger calls keep whatever the caller chose.

The outermost call decides and restores; a call nested inside it (a fit inside a posterior
inside a sweep) only counts its depth, so nesting costs nothing and a nested call keeps the
numbers it gave before the policy existed (its seeding is the outer call's business).
The streams, the param store and the thread counts are process-wide: calls running at once in
several threads of one process are not isolated from each other (the depth is per thread).
"""

from __future__ import annotations

import functools
import inspect
import random
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np
import pyro
import torch
from threadpoolctl import ThreadpoolController

#: elements of the design (n·d) from which a call uses the caller's threads; below, one thread
PARALLEL_WORK = 50_000_000

_depth = threading.local()
_blas: Optional[ThreadpoolController] = None
_modules: dict = {}  # source file → module name, of the warnings reissued
_registries: dict = {}  # source file → "already shown" registry, as ``warnings`` keeps per module


def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded in this process, found once (at the first call): finding them
    scans every loaded shared library (tens of ms), while setting their threads costs
    microseconds."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def threads_for(work: int) -> Optional[int]:
    """Threads for a call on ``work`` elements of data: 1 below :data:`PARALLEL_WORK`, else
    None (the caller's setting)."""
    return 1 if work < PARALLEL_WORK else None


@contextmanager
def caller_state(work: int = 0) -> Iterator[None]:
    """Run the body as one library call: save the caller's random streams, Pyro param store
    and thread counts, set the threads for ``work`` (see :func:`threads_for`), restore all.

    Parameters
    ----------
    work:
        The size of the call's data (n·d of the design; 0 for calls made of many small fits).

    Notes
    -----
    Restores Python ``random``, numpy's global ``RandomState``, torch's CPU generator, the Pyro
    param store (the body runs in an empty scope), ``torch.get_num_threads()`` and the BLAS
    libraries' thread counts. Nested uses only count their depth.
    """
    depth = getattr(_depth, "value", 0)
    if depth:
        _depth.value = depth + 1
        try:
            yield
        finally:
            _depth.value = depth
        return
    streams = random.getstate(), np.random.get_state(), torch.get_rng_state()
    torch_threads = torch.get_num_threads()
    threads = threads_for(work)
    blas = []  # (library, the caller's threads) of each BLAS this call changes
    _depth.value = 1
    try:
        if threads is not None:
            torch.set_num_threads(threads)
            blas = [(lib, lib.num_threads) for lib in _blas_controller().lib_controllers
                    if lib.num_threads != threads]
            for lib, _ in blas:
                lib.set_num_threads(threads)
        with pyro.get_param_store().scope():
            yield
    finally:
        _depth.value = 0
        for lib, caller in blas:
            lib.set_num_threads(caller)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        random.setstate(streams[0])
        np.random.set_state(streams[1])
        torch.set_rng_state(streams[2])


def _work(data) -> int:
    """n·d of a design given as an array or a DataFrame (anything with a shape), rows ×
    columns of the first row for nested sequences, else 0. Never converts the data: that is
    the call's job, with its own errors."""
    shape = getattr(data, "shape", None)
    if shape is not None:
        return int(np.prod(shape, dtype=np.int64))
    try:
        return len(data) * len(data[0])
    except (TypeError, IndexError, KeyError):
        return 0


def _module_name(filename: str) -> Optional[str]:
    """The name of the loaded module whose source is ``filename`` (what ``warnings`` matches
    a filter's ``module`` against)."""
    if filename not in _modules:
        _modules[filename] = next(
            (name for name, m in list(sys.modules.items())
             if getattr(m, "__file__", None) == filename), None)
    return _modules[filename]


def _reissue(caught: list, caller) -> None:
    """Issue again, through the caller's filters, the warnings a call recorded. Those that
    name the wrapper (the one frame :func:`entry_point` adds: a ``stacklevel`` aimed at the
    entry point's caller lands there) are issued from the caller's line, with its module and
    registry, as ``warnings.warn`` would have without the wrapper."""
    for w in caught:
        if w.filename == __file__:
            warnings.warn_explicit(
                w.message, w.category, caller.f_code.co_filename, caller.f_lineno,
                module=caller.f_globals.get("__name__"),
                registry=caller.f_globals.setdefault("__warningregistry__", {}))
        else:
            warnings.warn_explicit(
                w.message, w.category, w.filename, w.lineno, module=_module_name(w.filename),
                registry=_registries.setdefault(w.filename, {}), source=w.source)


def entry_point(func: Callable) -> Callable:
    """Decorate a public function (or method) so that each call runs in :func:`caller_state`,
    its work the size of its ``X`` argument when it has one (else 0: single-threaded).

    The outermost call records the warnings issued inside it and issues them again when it
    returns or raises, through the caller's filters; one aimed at the caller of an entry
    point then names the caller's line, not the wrapper's. A warning the caller's filters
    turn into an error is therefore raised when the call ends, not where it was issued.
    """
    params = list(inspect.signature(func).parameters)
    where = params.index("X") if "X" in params else None

    @functools.wraps(func)
    def call(*args, **kwargs):
        if getattr(_depth, "value", 0):  # nested: the outermost call saves, sets, restores
            with caller_state():
                return func(*args, **kwargs)
        work = 0
        if where is not None:
            work = _work(kwargs["X"] if "X" in kwargs else args[where] if len(args) > where
                         else None)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")  # filtered once, where they belong, below
                with caller_state(work):
                    return func(*args, **kwargs)
        finally:
            _reissue(caught, sys._getframe(1))

    return call
