"""How the benchmark times and sizes a step: interleaved medians, saved-tensor memory, FLOPs.

Variants compared with each other are timed round-robin on one list of batches, so that load
changes on a shared machine hit them alike; every number is the median over ``repeats`` steps
after ``warmup`` steps. Memory is the size of the tensors autograd saves for backward in one
step (unique storages, via ``saved_tensors_hooks``), plus CUDA's peak allocation on a GPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparsernn.batching import EncodedData
from sparsernn.nn.cells import GATES
from sparsernn.nn.structured import StructuredRNN
from sparsernn.train import evaluate_batch

__all__ = [
    "Step",
    "Timer",
    "draw_batches",
    "eval_step",
    "mean_len",
    "peak_gflops",
    "step_flops",
    "structure_flops",
]

#: One timed call on a batch: ``step(tokens (B, T), labels (B,))``.
Step = Callable[[Tensor, Tensor], Any]
Batches = Sequence[tuple[Tensor, Tensor]]


class Timer:
    """Wall and CPU medians of steps, synchronising around each call on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def interleaved(
        self, steps: Mapping[str, Step], batches: Batches, warmup: int, repeats: int
    ) -> dict[str, dict[str, float]]:
        """Median wall and CPU ms per step of each variant, timed round-robin on one batch list."""
        for fn in steps.values():
            for i in range(warmup):
                fn(*batches[i % len(batches)])
        wall: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        for r in range(repeats):
            tokens, labels = batches[(warmup + r) % len(batches)]
            for name, fn in steps.items():
                self.sync()
                t0, c0 = time.perf_counter(), time.process_time()
                fn(tokens, labels)
                self.sync()
                wall[name].append(1e3 * (time.perf_counter() - t0))
                cpu[name].append(1e3 * (time.process_time() - c0))
        return {
            name: {"ms": statistics.median(wall[name]), "cpu_ms": statistics.median(cpu[name])}
            for name in steps
        }

    def memory(self, fn: Step, batch: tuple[Tensor, Tensor]) -> dict[str, float]:
        """MB saved for backward in one step (and CUDA peak allocation above the start)."""
        seen: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        out: dict[str, float] = {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*batch)
        out["saved_mb"] = sum(seen.values()) / 2**20
        if self.cuda:
            out["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - start) / 2**20
        return out


def draw_batches(
    data: EncodedData, batch_size: int, n: int, seed: int, device: torch.device
) -> list[tuple[Tensor, Tensor]]:
    """The first ``n`` batches of a shuffled epoch (realistic padded lengths)."""
    order = np.random.default_rng(seed).permutation(len(data))
    out = []
    for tokens, labels in data.batches(order, batch_size):
        out.append((tokens.to(device), labels.to(device)))
        if len(out) == n:
            break
    return out


def mean_len(batches: Batches) -> float:
    """Mean padded length of the batches."""
    return float(np.mean([b[0].shape[1] for b in batches]))


def eval_step(model: nn.Module) -> Step:
    """One evaluation batch as :func:`sparsernn.train.evaluate` takes it (no autograd)."""
    return lambda tokens, labels: evaluate_batch(model, tokens, labels)


def step_flops(cell: str, batch: int, steps: float, emb: int, hidden: int, layers: int) -> float:
    """Matmul FLOPs of one dense training step of a stacked model (masks not exploited).

    Forward: ``2 B T G H (I_l + H)`` per layer (input and recurrent projections); the backward
    needs two matmuls of that size per forward one (input and weight gradients): 3x in all.
    Elementwise work, the embedding and the output layer are left out (a lower bound).
    """
    inputs = [emb] + [hidden] * (layers - 1)
    return 3 * sum(2 * batch * steps * GATES[cell] * hidden * (i + hidden) for i in inputs)


def structure_flops(net: StructuredRNN, batch: int, steps: float) -> dict[str, float]:
    """Matmul FLOPs of one training step of a random-structure net, two ways (3x forward).

    ``executed``: what the layer schedule's PyTorch kernels compute, every wide layer's i2h
    and h2h dense (``2 B T G W_k (I_k + W_k)``); ``useful``: only the entries the graph wires
    (the masks' nonzeros: masked i2h and the block-diagonal h2h), ``2 B T nnz``.
    """
    executed = useful = 0.0
    for layer in net.wide_layers:
        executed += sum(w.numel() for name, w in layer.named_parameters() if "weight" in name)
        useful += sum(float(mask.sum()) for _, mask in layer.masks())
    per_row = 3 * 2 * batch * steps  # forward + backward, 2 FLOPs per multiply-add
    return {
        "executed": per_row * executed,
        "useful": per_row * useful,
    }


def peak_gflops(timer: Timer, device: torch.device, n: int = 1024) -> float:
    """This process's dense fp32 matmul rate (GFLOP/s), the ceiling for any training step."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = timer.interleaved({"mm": lambda x, y: a @ b}, [(a, b)] * 8, 3, 5)
    return 2 * n**3 / (times["mm"]["ms"] / 1e3) / 1e9
