"""Benchmark of training-step times, and a projection of the full study's wall time.

``python -m sparsernn.bench [--quick] [--device cpu|cuda] [--threads N] [--json out.json]``
``python -m sparsernn.bench --section threads``: threads under load (:func:`run_threads_benchmark`)

What is timed (a "step" is the engine's :class:`sparsernn.train.TrainStep`, the step ``fit``
takes per batch: forward, cross-entropy, backward, gradient-norm clipping at 5, Adam):

- per cell and batch size (the study's 3 x 50 model, batches drawn from a shuffled epoch of the
  Reber data set, so lengths are realistic): (a) the slow loop reference
  (:mod:`sparsernn.nn.reference`: per-step Python loop, masks multiplied at every step),
  (b) :class:`~sparsernn.nn.MaskedRNN` inside :class:`~sparsernn.models.SequenceClassifier` at
  80% sparsity, (c) dense ``torch.nn.RNN/GRU/LSTM`` with the same embedding and linear layer;
- random-structure networks (WS and BA graphs of 50 and 25 nodes, batch 128): the slow
  one-module-per-sub-layer reference vs :class:`~sparsernn.nn.structured.StructuredRNN`;
- K models at once (:func:`sparsernn.train.train_many`): K pruned copies of one model in one set
  of batched ops vs the same models one by one.

Timing and memory are described in :mod:`sparsernn.bench.timing`; the projection multiplies
measured step and evaluation-batch times by the step counts of the ``full`` profile
(:mod:`sparsernn.bench.projection`). Modules: ``config``, ``timing``, ``sections``,
``projection``, ``formatting``, ``threads``, ``sparse`` and ``sparse_report`` (``--section
sparse``), ``command`` (the command line).

Two tools run on their own: ``python -m sparsernn.bench.profile_structure`` (where one
structure step's time goes, by ``torch.profiler`` category) and
``python -m sparsernn.bench.compare_kernel_runs NATIVE_DIR TORCH_DIR`` (the paired tables of
two structure studies, compiled loop against the PyTorch path).
"""

from sparsernn.bench.command import main
from sparsernn.bench.config import FULL_PROFILE, BenchConfig
from sparsernn.bench.formatting import format_report
from sparsernn.bench.projection import project_full_profile
from sparsernn.bench.sections import run_benchmark
from sparsernn.bench.threads import format_threads_report, run_threads_benchmark

__all__ = [
    "BenchConfig",
    "FULL_PROFILE",
    "run_benchmark",
    "project_full_profile",
    "format_report",
    "run_threads_benchmark",
    "format_threads_report",
    "main",
]
