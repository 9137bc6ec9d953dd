"""MaskedRNN's sparse path: which kernel a call takes, and running the masked stack sparsely.

``MaskedRNN(kernel=...)``: ``"dense"`` multiplies the masks into dense weights and runs the
fused kernels (:func:`sparsernn.nn.functional.run_layers`); ``"sparse"`` runs the compiled sparse
layer over the kept weights only, forward and backward (:mod:`sparsernn.nn.sparse_kernel`);
``"auto"`` (the default) takes the sparse path where its measured crossover says it is faster:
when some weight is masked and the kept share of the weights is at most the crossover density
measured on this machine class for the cell, the nearest measured hidden size and batch, and
the phase (a training step, or a forward without autograd), as ``sparse_crossover.json`` beside
this module holds it (:data:`CROSSOVER`, written by ``python -m sparsernn.bench --section sparse
--write-crossover``). Both paths compute the same function and the same gradients (to float
rounding).

The sparse path needs the compiled library (else one line says why, and the dense path runs),
a CPU, float32 or float64 weights; ``auto`` also keeps the dense path under training-time
dropout (its random draws differ between the paths). Each mask's compressed form is cached
and rebuilt when the mask's content changes (RigL, SET, AGP change masks between steps):
a rebuild costs one pass over the mask.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.weak import WeakTensorKeyDictionary

from sparsernn.errors import ConfigError
from sparsernn.nn import sparse_kernel
from sparsernn.nn.cells import CellSpec
from sparsernn.nn.functional import autocast_enabled
from sparsernn.nn.sparse_kernel import Pattern, SparseWeights
from sparsernn.nn.sparse_stack import run_stack

__all__ = [
    "KERNELS",
    "check_kernel",
    "crossover_density",
    "mask_pattern",
    "uses_sparse",
    "trains_alone",
    "run",
]

#: The kernels ``MaskedRNN(kernel=...)`` takes.
KERNELS = ("auto", "dense", "sparse")

_patterns: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

#: The measured crossovers' file (generated: ``python -m sparsernn.bench --section sparse
#: --write-crossover``).
CROSSOVER_FILE = Path(__file__).with_name("sparse_crossover.json")


def load_crossover(path: Path = CROSSOVER_FILE) -> tuple[dict[str, Any], dict[str, str]]:
    """The crossover table (cell -> phase -> hidden size -> batch -> the largest kept share
    at which the sparse path was measured faster; phases ``train``, ``infer`` and ``bundle``)
    and where it was measured; an empty table where the file is missing."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, {"measured": "not measured", "commit": ""}
    table = {
        cell: {phase: {int(h): {int(b): float(d) for b, d in by_batch.items()}
                       for h, by_batch in by_hidden.items()}
               for phase, by_hidden in phases.items()}
        for cell, phases in data["table"].items()
    }  # fmt: skip
    return table, {k: str(v) for k, v in data.items() if k != "table"}


#: The table ``auto`` reads, and where and when it was measured (``measured``, ``commit``).
CROSSOVER, MEASURED = load_crossover()


def check_kernel(kernel: str) -> str:
    """``kernel`` if it is one of :data:`KERNELS`, else a one-line ConfigError."""
    if kernel not in KERNELS:
        raise ConfigError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    return kernel


def mask_pattern(mask: Tensor) -> Pattern:
    """The compressed form of a boolean mask, cached per mask tensor and rebuilt when its
    content changes (compared in full at every call: a mask edited through ``.data`` or
    replaced in place is never missed)."""
    cached = _patterns.get(mask)
    if cached is not None and torch.equal(cached[0], mask):
        return cached[1]
    pattern = Pattern.of(mask)
    _patterns[mask] = (mask.detach().clone(), pattern)
    return pattern


def _nearest(options: Sequence[int], value: int) -> int:
    """The option nearest to ``value`` on a log scale."""
    return min(options, key=lambda o: abs(math.log(max(value, 1)) - math.log(o)))


def crossover_density(
    cell: str, hidden: int, batch: int, training: bool, table: Mapping[str, Any] | None = None
) -> float:
    """The largest kept share at which the sparse path was measured faster than the dense one,
    for the measured hidden size and batch nearest to these; 0.0 where it never was (or
    nothing was measured for the cell)."""
    by_phase = (table if table is not None else CROSSOVER).get(cell, {})
    by_hidden = by_phase.get("train" if training else "infer", {})
    if not by_hidden:
        return 0.0
    by_batch = by_hidden[_nearest(list(by_hidden), hidden)]
    return float(by_batch[_nearest(list(by_batch), batch)])


def _tags(module: Any) -> list[str]:
    """Each layer's and direction's name part in torch's order: ``l0``, ``l0_reverse``, ..."""
    suffixes = ("", "_reverse")[: getattr(module, "num_directions", 1)]
    return [f"l{k}{suffix}" for k in range(module.num_layers) for suffix in suffixes]


def _layer_patterns(module: Any) -> list[tuple[Pattern, Pattern]]:
    return [
        (mask_pattern(getattr(module, f"weight_ih_{tag}_mask")),
         mask_pattern(getattr(module, f"weight_hh_{tag}_mask")))
        for tag in _tags(module)
    ]  # fmt: skip


def _batch_of(x: Tensor, batch_first: bool, batch_sizes: Tensor | None) -> int:
    if batch_sizes is not None:
        return int(batch_sizes[0]) if batch_sizes.numel() else 0
    return x.shape[0 if batch_first else 1]


def uses_sparse(module: Any, x: Tensor, batch_sizes: Tensor | None = None) -> bool:
    """Whether this call of ``module`` (a MaskedRNN) takes the sparse path (see the module)."""
    kernel = getattr(module, "kernel", "auto")
    if kernel == "dense" or not sparse_kernel.supports(x):
        return False
    if autocast_enabled(x.device.type):  # torch's kernels follow autocast's dtype rules
        return False
    if getattr(module, "dense_grads", None) is not None and torch.is_grad_enabled():
        return False  # the pruned weights' gradients are asked for (track_dense_grads)
    weight = module.weight_hh_l0
    if weight.device.type != "cpu" or weight.dtype != x.dtype:
        return False
    if not sparse_kernel.available():
        return False
    if kernel == "sparse":
        return True
    if module.dropout > 0 and module.training:
        return False
    kept = _kept_share(module)
    training = torch.is_grad_enabled() and weight.requires_grad
    batch = _batch_of(x, module.batch_first, batch_sizes)
    hidden = max(module.hidden_sizes)
    return kept < 1 and kept <= crossover_density(module.mode, hidden, batch, training)


def _kept_share(module: Any) -> float:
    patterns = [p for pair in _layer_patterns(module) for p in pair]
    return sum(p.nnz for p in patterns) / max(1, sum(p.shape[0] * p.shape[1] for p in patterns))


def trains_alone(module: Any, batch: int) -> bool:
    """Whether a model with this MaskedRNN trains faster alone by the sparse path than as one
    of :func:`sparsernn.train.train_many`'s batched models: ``auto``, a CPU with the library,
    and a kept share within both the measured ``bundle`` crossover (alone against the share
    of the batched step) and the training one."""
    if getattr(module, "kernel", "auto") != "auto" or module.dropout > 0:
        return False
    weight = module.weight_hh_l0
    if not sparse_kernel.supports(weight) or not sparse_kernel.available(warn=False):
        return False
    hidden, kept = max(module.hidden_sizes), _kept_share(module)
    return kept < 1 and kept <= min(
        crossover_density(module.mode, hidden, batch, True),
        crossover_density(module.mode, hidden, batch, True, _bundles()),
    )


def _bundles() -> Mapping[str, Any]:
    """The crossover table's ``bundle`` entries, as a table of ``train`` phases."""
    return {
        cell: {"train": phases["bundle"]}
        for cell, phases in CROSSOVER.items()
        if "bundle" in phases
    }


def run(
    module: Any,
    spec: CellSpec,
    x: Tensor,
    per_layer: Sequence | None,
    batch_sizes: Tensor | None = None,
) -> tuple[Tensor, list]:
    """The masked stack of ``module`` over ``x`` by the sparse path (as ``run_layers`` returns
    it: the top layer's output and each layer's final state)."""
    directions = getattr(module, "num_directions", 1)
    entries = []
    for tag, (ih, hh) in zip(_tags(module), _layer_patterns(module), strict=True):
        bias = [getattr(module, f"bias_{kind}_{tag}") if module.bias else None
                for kind in ("ih", "hh")]  # fmt: skip
        values = (ih.gather(getattr(module, f"weight_ih_{tag}")),
                  hh.gather(getattr(module, f"weight_hh_{tag}")))  # fmt: skip
        entries.append(SparseWeights(ih, hh, *values, *bias))
    layers = [entries[i : i + directions] for i in range(0, len(entries), directions)]
    return run_stack(
        spec,
        layers,
        x,
        per_layer,
        batch_first=module.batch_first,
        batch_sizes=batch_sizes,
        dropout=module.dropout,
        training=module.training,
    )
