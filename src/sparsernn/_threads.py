"""The torch thread policy of training and evaluation, scoped to one call.

The models studied here (a few layers of ~50 units) have too little work per operation to split
over threads: OpenMP threads spin-wait for each other, and beside other busy processes torch's
default intra-op thread count made a training epoch 5-60x slower than one thread (see
``benchmarks/README.md``). So ``fit``, ``evaluate`` and ``train_many`` run with ONE intra-op
thread unless the user chose a count: an explicit ``threads=N`` (``TrainConfig.threads``,
``--threads N``) or ``OMP_NUM_THREADS`` in the environment. :func:`torch_threads` applies that
count and flush-to-zero for denormals for the length of a ``with`` block only, and restores the
caller's settings on exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from sparsernn.errors import ConfigError

__all__ = ["resolve_threads", "torch_threads"]


def resolve_threads(threads: int | None = None) -> int:
    """The intra-op thread count to use: ``threads``, else ``OMP_NUM_THREADS``, else 1."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads={threads!r} must be an integer >= 1 (or None: auto)")
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    return 1


def _flush_denormal_enabled() -> bool:
    """Whether this thread flushes denormals to zero (torch has no getter: probe it)."""
    tiny = torch.tensor([1e-310], dtype=torch.float64)  # a float64 denormal
    return bool((tiny * 1.0).item() == 0.0)


@contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Run a block with :func:`resolve_threads` intra-op threads and denormals flushed to zero.

    Both settings are restored on exit (also on error), so the library never changes the
    caller's global torch state for longer than a call. Yields the thread count in force.
    Nested blocks with the same count change nothing.
    """
    n = resolve_threads(threads)
    old_threads = torch.get_num_threads()
    old_flush = _flush_denormal_enabled()
    if n != old_threads:
        torch.set_num_threads(n)
    if not old_flush:
        torch.set_flush_denormal(True)  # masked ReLU nets otherwise hit slow denormal arithmetic
    try:
        yield n
    finally:
        if not old_flush:
            torch.set_flush_denormal(False)
        if torch.get_num_threads() != old_threads:
            torch.set_num_threads(old_threads)
