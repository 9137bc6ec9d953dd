"""Data: the Reber grammars, invalid-string generators, data sets, CSV IO and ASCII encoding.

Lowest layer of sparsernn: imports nothing from the rest of the package but errors, seeds and
configs. It knows grammars, not tasks: :mod:`sparsernn.tasks`, above it, owns the task registry
and checks a :class:`DataSpec`'s ``task`` against it.
"""

from sparsernn.data import negatives, reber
from sparsernn.data.dataset import Dataset, encode, read_csv, write_csv
from sparsernn.data.negatives import NEGATIVE_KINDS, make_negatives
from sparsernn.data.reber import EMBEDDED_REBER, REBER, Grammar, accepts, get_grammar
from sparsernn.data.spec import DataSpec, make_dataset

__all__ = [
    "Grammar",
    "REBER",
    "EMBEDDED_REBER",
    "get_grammar",
    "accepts",
    "NEGATIVE_KINDS",
    "make_negatives",
    "DataSpec",
    "Dataset",
    "make_dataset",
    "read_csv",
    "write_csv",
    "encode",
    "reber",
    "negatives",
]
