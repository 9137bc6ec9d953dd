"""sparsernn: study sparsity in recurrent neural networks (magnitude pruning, random structure),
and make the recurrent layers of your own model sparse (:func:`sparsify`).

The names people type are here, loaded on first use (PEP 562) so that ``import sparsernn``
stays light: :func:`sparsify`, :class:`~sparsernn.nn.MaskedRNN`,
:class:`~sparsernn.nn.StructuredRNN`, :class:`~sparsernn.nn.SparseRNN`,
:func:`~sparsernn.models.build_model`,
:func:`~sparsernn.train.fit`, :func:`~sparsernn.train.evaluate` and
:func:`~sparsernn.sparsity.magnitude_prune`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsernn._lazy import lazy_getattr

if TYPE_CHECKING:
    from sparsernn.models import build_model
    from sparsernn.nn import MaskedRNN, SparseRNN, StructuredRNN
    from sparsernn.sparsity import magnitude_prune, sparsify
    from sparsernn.train import evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "sparsify",
    "MaskedRNN",
    "StructuredRNN",
    "SparseRNN",
    "build_model",
    "fit",
    "evaluate",
    "magnitude_prune",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "sparsify": "sparsernn.sparsity",
        "magnitude_prune": "sparsernn.sparsity",
        "MaskedRNN": "sparsernn.nn",
        "StructuredRNN": "sparsernn.nn",
        "SparseRNN": "sparsernn.nn",
        "build_model": "sparsernn.models",
        "fit": "sparsernn.train",
        "evaluate": "sparsernn.train",
    },
)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
