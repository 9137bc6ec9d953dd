"""docs/sparse.md, from the sparse benchmark run :data:`RUN` (``make docs`` writes it).

A run is ``python -m sparsernn.bench --section sparse --json RUN.json``'s output, kept in
``benchmarks/``. Every number and table of the page comes from it, through the functions the
benchmark prints its own report with (``sparsernn.bench.sparse_report``); the prose around them
is below. A new run: save its JSON under ``benchmarks/``, point :data:`RUN` at it, ``make docs``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sparsernn.bench.sparse_report import (
    auto_line,
    crossover_markdown,
    format_sparse_report,
    projection,
    targets,
    torch_sparse_markdown,
)

HOW_TO = """\
## Getting a fast pruned model

**From your own model.** Zero the pruned weights of a `torch.nn.RNN`, `GRU` or `LSTM` (with
`torch.nn.utils.prune` and `prune.remove`, by hand, or by any other method), then keep only the
nonzeros:

```python
import torch
from torch.nn.utils import prune
from sparsernn.nn import SparseRNN

lstm = torch.nn.LSTM(256, 256, num_layers=2)          # trained
for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"):
    prune.l1_unstructured(lstm, name, amount=0.9)
    prune.remove(lstm, name)                          # the zeros become permanent
sparse = SparseRNN.from_module(lstm)                  # nonzeros only; torch.nn's forward
torch.save(sparse.state_dict(), "lstm90.pt")          # the memory table below: its size

restored = SparseRNN("lstm", 256, 256, num_layers=2)  # empty; takes the saved counts
restored.load_state_dict(torch.load("lstm90.pt"))
out, (h_n, c_n) = restored(torch.randn(50, 1, 256))   # as lstm(...) gives, to rounding
```

`SparseRNN` takes `batch_first`, `(h_0, c_0)`, a `PackedSequence`, several layers and
`bidirectional=True` (the `_reverse` weights) as `torch.nn` does, and float32 or float64; it
refuses `proj_size` and other dtypes or devices in one line. Its stored values are parameters:
fine-tuning them keeps the zeros zero. `to_torch()` gives the dense module back.

**From a MaskedRNN, or a study.** `SparseRNN.from_module(masked_rnn)` keeps the masked weights'
nonzeros. A study stores its base models (`<study>/artefacts/base-<cell>-s<seed>-<key>/model.pt`);
a pruning point is one call away from it, and its retraining already takes the sparse path where
the crossover says it pays:

```python
from sparsernn.checkpoints import load_checkpoint
from sparsernn.prune import magnitude_prune
from sparsernn.train import TrainConfig, fit

model, _ = load_checkpoint("runs/full/artefacts/base-lstm-s0-<key>/model.pt")
magnitude_prune(model, 0.9, target="both")            # the study's rule (global threshold)
fit(model, train, test, TrainConfig(epochs=10))       # your data; kernel="auto": sparse here
fast = SparseRNN.from_module(model.recurrent)         # the recurrent stack, nonzeros only
```

**Training sparse.** `MaskedRNN(..., kernel="auto")` (the default) computes only the kept
weights, forward and backward, wherever the table above says that is faster; `"sparse"` and
`"dense"` force one path. Both give the same outputs and gradients to float rounding (the tests
hold them to 1e-6 in float32 and 1e-10 in float64, for every cell, batch tails and packed
sequences). Masks may change between steps (SET, RigL, AGP): each mask's compressed form is
rebuilt when its content changes, one pass over the mask, far less than a training step.
`train_many` trains a pruning point alone by the sparse path where that measured faster than its
share of the batched step of all points.

**Without a compiler** the compiled layer cannot be built: one warning line says why, and both
modules run PyTorch's dense kernels over the same weights (same results, no speed-up). On a GPU
`SparseRNN` and `MaskedRNN` run the dense kernels (cuDNN) over the stored weights.
"""

WHAT = """\
## What runs, and why not torch.sparse

The sparse path is `src/sparsernn/nn/_native/sparse_layer.cpp` (with `sparse_products.cpp`),
built with the system's C++ compiler by the same code as the structure networks' compiled loop
(`sparsernn/nn/_build.py`: a per-user cache, checksums, the ABI version given as `-DSPL_ABI`
and the shared structs checked field by field on loading; `make install` or the first use
builds it). One call runs one direction of one layer over the whole sequence, and one call its
backward. Sequences are feature-major with the
batch innermost, so a kept weight multiplies a whole row of batch lanes (AVX-512 vectors); the
input product of all time steps is one product before the loop; at batch 1 the recurrent rows
are packed a vector of rows at a time (sliced ELLPACK) and the state's entries gathered; the
weight gradients are sampled products, one dot product over all steps and lanes per kept
weight; the gates are vectorised in the same loop.

`torch.sparse` was tried first, in the same run (the table below): an LSTM layer's forward with
its weights as CSR tensors (MKL's sparse times dense on CPU), the input product of all steps at
once and one sparse product per step from Python, as a loop over `torch.sparse` has to run it.
BSR needs dense blocks, which unstructured masks do not give: the last column is the share of
4x4 blocks a BSR tensor would still store at 90% sparsity. A GPU keeps PyTorch's dense kernels.

Where it does not pay: at batch 1 a step's recurrent product gathers one state entry per kept
weight, and a gather costs about what streaming a dense row from the L2 cache does; so at 256
units, where the dense weights still fit in L2 and PyTorch's LSTM kernel runs close to that
stream, the sparse layer gains less than the weights shrink (the targets above), and from 1024
units, where they do not fit, it gains more. With a batch every kept weight feeds a whole
vector of lanes, but so does every dense weight in MKL's GEMMs, which stay faster below the
crossover table's sparsities from 256 units on; at the study's 50 units the
per-step costs outside the products dominate and the compiled loop wins at any sparsity for
RNN-tanh/ReLU and GRU, whose dense CPU paths are loops of small operations.
"""


#: The run the page is made from (relative to the repository).
RUN = "benchmarks/sparse-2026-12-07-c7ea848.json"


def render(root: Path) -> str:
    """The page's text from ``root / RUN``."""
    results = json.loads((root / RUN).read_text())
    m = results["meta"]
    start = m["crossover_at_start"]  # the table auto reads: an earlier run's, checked here
    if not start["table"]:
        raise SystemExit("the run started without a crossover table: run it again after one")
    proj = projection(results["study"]) if results["study"] else None
    lines = [
        "# When sparsity pays on a CPU",
        "",
        f"<!-- generated by make docs (docs/pages/sparse.py) from {RUN}; do not edit -->",
        "",
        f"Measured {m['date']} at commit `{m['commit']}` (`python -m sparsernn.bench --section "
        f"sparse`), torch {m['torch']}, one thread of a {m['cpu_count']}-core CPU shared with a "
        f"long study and other jobs (load average {m['load_avg_start']:.1f} -> "
        f"{m['load_avg_end']:.1f}): absolute times swing with the load, so only the ratios "
        "between variants timed side by side in one run mean anything.",
        "",
        "The sparse path beats `MaskedRNN`'s dense path from these sparsities on (one layer, "
        f"input size = hidden size, {results['config']['steps']} time steps; *never*: not at "
        f'{max(results["config"]["sparsities"]):.0%}); `MaskedRNN(kernel="auto")` reads '
        "exactly this table (`sparsernn/nn/sparse_crossover.json`, written by the benchmark run "
        f"of {start['measured']} at commit `{start['commit']}`; this run's own crossovers are "
        "at the end):",
        "",
        *crossover_markdown(results, start["table"]),
        "",
        auto_line(results),
        "",
        "Issue 24's targets on this run:",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        *(
            f"| {t['target']} | >= {t['goal']:g}x | "
            f"{'n/a' if t['ratio'] is None else format(t['ratio'], '.2f') + 'x'} | "
            f"{'met' if t['met'] else 'missed'} |"
            for t in targets(results)
        ),
    ]
    if proj:
        lines += [
            "",
            f"The full profile's pruning grid (one seed, 30 points per cell) projects to "
            f"{proj['today_h']:.2f} h as retrained today and {proj['sparse_h']:.2f} h with the "
            "sparse path.",
        ]
    lines += ["", HOW_TO, WHAT, "", *torch_sparse_markdown(results), ""]
    lines += ["## All numbers of the run", "", format_sparse_report(results)]
    return "\n".join(lines) + "\n"
