"""One place that turns a user's ``seed`` into random generators (the networkx/sklearn habit).

Every random choice in sparsernn takes ``seed`` and passes it through :func:`rng`; torch code
uses :func:`torch_generator` so the same seed gives the same numbers on CPU.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["rng", "derive_seed", "SeedLike"]

SeedLike = int | np.random.Generator | None


def rng(seed: SeedLike = None) -> np.random.Generator:
    """A numpy Generator for ``seed``: an int, an existing Generator, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(None if seed is None else int(seed))
    raise TypeError(f"seed must be an int, a numpy Generator or None, not {type(seed).__name__}")


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts, e.g. ``derive_seed(seed, "graph", 3)``.

    Used to give independent streams to sub-tasks (graph sampling, weight init, batch order)
    without them depending on the order in which the tasks run.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
