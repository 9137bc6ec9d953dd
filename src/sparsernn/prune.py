"""Magnitude pruning of recurrent weights (the study's rule) and a gradual AGP schedule.

The study's façade over :mod:`sparsernn.sparsity`, where the other methods (random, SNIP,
lottery tickets, SET/RigL, N:M, unit removal) and the ``gate`` scope live.

A pruning criterion only computes masks from scores; installing them is
:meth:`MaskedRNN.set_mask`'s job (the ``torch.nn.utils.prune`` split). The study's rule
(SPEC section 4): one threshold, the ``amount``-th percentile (numpy's linear interpolation) of
``|w|`` over all selected weights of all recurrent layers together; a weight is removed iff
``|w| < threshold``. Biases, embedding and classifier are never pruned.

Units: the Python API takes ``sparsity`` as a fraction in [0, 1] everywhere (as
``torch.nn.utils.prune``'s float ``amount`` and :class:`AGPSchedule`); only the study's configs,
stored results and CLI speak of ``amount`` in percent, and convert with ``amount / 100``
(exactly the quantile numpy's percentile computes). A value above 1 is refused, since it is
almost surely a percentage.
"""

from __future__ import annotations

import pandas as pd
from torch import Tensor, nn

from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity import (
    SCOPES,
    TARGETS,
    AGPSchedule,
    GradualPruner,
    check_sparsity,
    gate_blocks,
    install_masks,
    magnitude_scores,
    masks_from_scores,
)

__all__ = [
    "TARGETS",
    "SCOPES",
    "magnitude_prune",
    "magnitude_masks",
    "sparsity_report",
    "AGPSchedule",
    "GradualPruner",
]


def magnitude_masks(
    model: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Compute keep-masks (True = keep) without touching the model.

    ``scope="global"`` uses one threshold over all selected weights (the study's rule);
    ``scope="layer"`` gives each weight matrix its own percentile, ``scope="gate"`` each gate
    block of each matrix (:func:`sparsernn.sparsity.masks_from_scores`). Entries already masked keep
    their mask (pruning only removes). Keys are qualified names, e.g. ``recurrent.weight_hh_l1``.
    """
    check_sparsity(sparsity, target, scope)
    return masks_from_scores(model, magnitude_scores(model, target), sparsity, target, scope)


def magnitude_prune(
    model_or_module: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Prune in place by magnitude and return the installed masks.

    Parameters
    ----------
    model_or_module : a model containing :class:`MaskedRNN` modules, or one itself.
    sparsity : fraction in [0, 1] of the selected weights to remove (ties at the threshold are
        kept, so the achieved sparsity can be lower; see :func:`sparsity_report`). A study's
        ``amount`` in percent is ``sparsity = amount / 100``; values above 1 are refused.
    target : ``"both"``, ``"i2h"`` (input-to-hidden) or ``"h2h"`` (hidden-to-hidden).
    scope : ``"global"`` (the study: one threshold over all layers) or ``"layer"``.

    Examples
    --------
    >>> rnn = MaskedRNN("gru", 4, 8, num_layers=2)
    >>> masks = magnitude_prune(rnn, 0.5, target="h2h")
    >>> sorted(masks)
    ['weight_hh_l0', 'weight_hh_l1']
    """
    return install_masks(model_or_module, magnitude_masks(model_or_module, sparsity, target, scope))


def sparsity_report(model: nn.Module, per_gate: bool = False) -> pd.DataFrame:
    """Per maskable matrix: kind (i2h/h2h), layer, size, kept entries and achieved sparsity.

    ``per_gate=True`` gives one row per gate block of each matrix instead (column ``gate``:
    ``r``/``z``/``n`` for GRU, ``i``/``f``/``g``/``o`` for LSTM, ``h`` for an Elman RNN), so
    the rows still add up to the matrices.
    """
    rows = []
    for prefix, mod in model.named_modules():
        if not isinstance(mod, MaskedRNN):
            continue
        for name, mask in mod.masks():
            blocks = gate_blocks(mod, name) if per_gate else [(None, slice(None))]
            for gate, part in blocks:
                kept, size = int(mask[part].sum()), mask[part].numel()
                row = {
                    "weight": f"{prefix}.{name}" if prefix else name,
                    "kind": "i2h" if "_ih_" in name else "h2h",
                    "layer": int(name.rsplit("_l", 1)[1]),
                    "size": size,
                    "kept": kept,
                    "sparsity": 1.0 - kept / size,
                }
                rows.append(row if gate is None else {**row, "gate": gate})
    return pd.DataFrame(rows)
