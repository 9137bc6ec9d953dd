"""Where one random-structure training step spends its time (``torch.profiler``, 1 thread).

``python -m sparsernn.bench.profile_structure [--cell gru] [--graph ws-50] [--batch 128]
[--steps 5] [--kernel auto|native|torch]`` times the engine's step
(:class:`sparsernn.train.TrainStep`) of a structure net built as the structure runner builds
it, on batches of the study's data, then profiles the same steps and sums every op's *self*
CPU time into a few categories. Wall time not covered by any op is Python and framework glue;
the "dispatch floor" is the op count times the cost of one tiny op, measured here (what the
ops would cost with no work at all).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from sparsernn._threads import torch_threads
from sparsernn.batching import EncodedData
from sparsernn.bench.config import study_train_step
from sparsernn.bench.timing import draw_batches
from sparsernn.data import DataSpec, make_dataset
from sparsernn.graphs import graph_to_edges, make_graph
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import strings_task

__all__ = ["CATEGORIES", "category", "main", "run", "tiny_op_us"]

#: Op-name prefixes of each category (first match wins); the rest is "other ops". The self
#: time of a hand-written autograd Function (``_Recurrence`` and its ``...Backward``) is the
#: Python of its time loop between the ops it calls; that of ``_LayerSchedule`` (the whole
#: layer schedule) is the compiled loop itself (:mod:`sparsernn.nn.native`: no ops inside).
CATEGORIES: dict[str, tuple[str, ...]] = {
    name: tuple(prefixes.split())
    for name, prefixes in {
        "compiled time loop (forward + backward)": "_LayerSchedule",
        "Python in the hand-written time loops": "_Recurrence",
        "optimizer + clipping": "Optimizer aten::_fused_adam aten::_foreach aten::norm "
        "aten::linalg_vector_norm",
        "BLAS (mm/addmm/bmm)": "aten::mm aten::addmm aten::bmm aten::baddbmm aten::addmv",
        "elementwise gate math": "aten::sigmoid aten::tanh aten::mul aten::add aten::sub "
        "aten::rsub aten::lerp aten::addcmul aten::clamp aten::div aten::neg aten::gt "
        "aten::sum aten::threshold",
        "copies / cat / index": "aten::copy_ aten::cat aten::index aten::gather aten::scatter "
        "aten::clone aten::contiguous aten::stack aten::embedding aten::zero_ aten::fill_ "
        "aten::zeros aten::ones aten::constant_pad aten::_to_copy",
        "views / allocation": "aten::view aten::unbind aten::select aten::slice "
        "aten::transpose aten::as_strided aten::reshape aten::expand aten::empty aten::t "
        "aten::unsqueeze aten::squeeze aten::split aten::chunk aten::narrow aten::permute "
        "aten::detach aten::alias aten::resize_ aten::new_ aten::flatten aten::unsafe "
        "aten::_unsafe aten::lift aten::result_type aten::_reshape_alias aten::resolve_conj",
        "autograd engine (nodes, grad accumulation)": "autograd:: torch::autograd:: Backward",
    }.items()
}


def category(name: str) -> str:
    """The category of one profiler event name (see :data:`CATEGORIES`)."""
    for cat, prefixes in CATEGORIES.items():
        if any(name.startswith(p) or (p == "Backward" and p in name) for p in prefixes):
            return cat
    return "other ops"


def tiny_op_us(repeats: int = 20_000) -> float:
    """Microseconds of one ``torch.add(a, b, out=c)`` on 1-element tensors: the dispatch floor."""
    a, b, c = torch.ones(1), torch.ones(1), torch.empty(1)
    for _ in range(1000):
        torch.add(a, b, out=c)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.add(a, b, out=c)
    return 1e6 * (time.perf_counter() - t0) / repeats


def _setup(args: argparse.Namespace):
    kind, n = args.graph.split("-")
    graph = make_graph(kind, int(n), seed=0)
    cfg = ModelConfig(
        cell=args.cell, embedding_dim=None, graph_edges=tuple(graph_to_edges(graph)), n_nodes=int(n)
    )
    model = build_model(cfg, seed=0)
    model.recurrent.kernel = args.kernel
    data = EncodedData(strings_task(make_dataset(DataSpec(n_strings=5000, seed=0))[0]))
    batches = draw_batches(data, args.batch, args.steps + 3, 0, torch.device("cpu"))
    return model, study_train_step(model), batches


def run(args: argparse.Namespace) -> str:
    """Time and profile the steps; the table as text."""
    model, step, batches = _setup(args)
    for b in batches[:3]:
        step(*b)
    timed = batches[3:]
    walls = []
    for b in timed:
        t0 = time.perf_counter()
        step(*b)
        walls.append(1e3 * (time.perf_counter() - t0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for b in timed:
            step(*b)
        prof_wall = 1e3 * (time.perf_counter() - t0) / len(timed)
    self_us: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for ev in prof.key_averages():
        self_us[category(ev.key)] += ev.self_cpu_time_total
        if ev.key.startswith("aten::"):
            calls[category(ev.key)] += ev.count
    per_step = {cat: us / 1e3 / len(timed) for cat, us in self_us.items()}
    covered = sum(per_step.values())
    per_step["Python / glue (not inside any op)"] = max(prof_wall - covered, 0.0)
    n_ops = sum(calls.values()) / len(timed)
    tiny = tiny_op_us()
    floor = n_ops * tiny / 1e3
    t_mean = sum(b[0].shape[1] for b in timed) / len(timed)
    net = model.recurrent
    lines = [
        f"{args.cell} {args.graph} ({net.n_layers} layers, {len(net.plan)} fused calls), "
        f"kernel {'native' if net.uses_native() else 'torch'}, "
        f"batch {args.batch}, mean T {t_mean:.1f}, "
        f"{torch.get_num_threads()} thread",
        f"step wall: {statistics.median(walls):.1f} ms unprofiled (median of {len(walls)}), "
        f"{prof_wall:.1f} ms under the profiler",
        "",
        "| category | ms per step (profiled) | share | aten calls per step |",
        "|---|---:|---:|---:|",
    ]
    for cat, ms in sorted(per_step.items(), key=lambda kv: -kv[1]):
        share, n_calls = 100 * ms / prof_wall, calls.get(cat, 0) / len(timed)
        lines.append(f"| {cat} | {ms:.1f} | {share:.0f}% | {n_calls:.0f} |")
    lines.append("")
    lines.append(
        f"aten ops per step: {n_ops:.0f}; dispatch floor (ops x {tiny:.1f} us per tiny "
        f"op, unprofiled): {floor:.1f} ms"
    )
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]
    lines.append("")
    lines.append(
        "top ops by self time: "
        + ", ".join(
            f"{e.key} {e.self_cpu_time_total / 1e3 / len(timed):.1f} ms x{e.count // len(timed)}"
            for e in top
        )
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of ``python -m sparsernn.bench.profile_structure``."""
    parser = argparse.ArgumentParser(
        prog="python -m sparsernn.bench.profile_structure",
        description=(__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--graph", default="ws-50")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--kernel", default="auto", choices=("auto", "native", "torch"))
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)
    with torch_threads(1):
        print(run(args))


if __name__ == "__main__":
    main()
