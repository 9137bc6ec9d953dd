"""The sparse section's numbers read off: crossovers, the pruning grid's projection, the targets
of issue 24, the text and Markdown tables, and the crossover table ``auto`` reads.

Everything here is computed from a :func:`~sparsernn.bench.sparse.run_sparse_benchmark` result
(or its JSON): ``docs/pages/sparse.py`` (``make docs``) and ``--write-crossover`` use the same
functions, so no number in the docs or the package is typed by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sparsernn.bench.config import FULL_PROFILE
from sparsernn.nn.cells import CELLS

__all__ = [
    "crossover_sparsity",
    "crossovers",
    "split_alone",
    "projection",
    "targets",
    "grid_line",
    "study_line",
    "format_sparse_report",
    "crossover_markdown",
    "auto_vs_dense",
    "auto_line",
    "torch_sparse_markdown",
    "crossover_json",
]

Row = Mapping[str, Any]
_STEPS = math.ceil(FULL_PROFILE["n_train"] / FULL_PROFILE["base_batch"])
_EVALS = math.ceil(FULL_PROFILE["n_test"] / FULL_PROFILE["base_batch"])


def _sparse_times(row: Row) -> list[tuple[float, float]]:
    """(sparsity, ms) of a grid row's sparse variants, by increasing sparsity."""
    pairs = [(float(k.split("@")[1]), v) for k, v in row["ms"].items() if k.startswith("sparse@")]
    return sorted(pairs)


def crossover_sparsity(row: Row, against: str = "masked") -> float | None:
    """The sparsity from which the sparse path is faster than ``against`` at every measured
    sparsity above it: interpolated (log time ratio linear in sparsity) between the last slower
    and the first faster point; the lowest measured sparsity if it is faster everywhere (no
    extrapolation below it); None if it is slower at the highest."""
    ref = row["ms"][against]
    points = _sparse_times(row)
    first = len(points)
    while first > 0 and points[first - 1][1] < ref:
        first -= 1
    if first == len(points):
        return None
    if first == 0:
        return points[0][0]
    (s0, t0), (s1, t1) = points[first - 1], points[first]
    r0, r1 = math.log(t0 / ref), math.log(t1 / ref)  # r0 >= 0 > r1
    return s0 + (s1 - s0) * r0 / (r0 - r1)


def crossovers(grid: Sequence[Row]) -> dict[str, Any]:
    """cell -> phase -> hidden -> batch -> the largest kept share (1 - sparsity) at which the
    sparse path beat ``MaskedRNN``'s dense path (0.0: it never did): what ``auto`` reads."""
    table: dict[str, Any] = {}
    for row in grid:
        s = crossover_sparsity(row, "masked")
        density = 0.0 if s is None else round(1.0 - s, 4)
        by_phase = table.setdefault(row["cell"], {}).setdefault(row["phase"], {})
        by_phase.setdefault(int(row["hidden"]), {})[int(row["batch"])] = density
    return table


# ---------------------------------------------------------------------------------- the study
def _point_ms(study: Row, i: int) -> tuple[float, float]:
    """(training step, eval batch) ms of pruning point ``i`` run alone by the sparse kernel."""
    p = study["points"][i]
    key = f"sparse/{p['target']}/{p['amount']}"
    return study["ms"][key], study["eval_ms"][key]


def _train_limit(study: Row, table: Mapping[str, Any] | None) -> float:
    """The training crossover ``auto`` uses for the study model (hidden 50, batch 32)."""
    from sparsernn.nn.sparse_path import crossover_density

    return crossover_density(study["cell"], 50, int(study["batch"]), True, table)


def bundle_limit(study: Row) -> float:
    """The largest density up to which every pruning point trained alone by the sparse kernel
    was faster than its share of the batched step of all points (0.0: none was)."""
    share = study["ms"]["batched"] / study["n_models"]
    order = sorted(range(len(study["points"])), key=lambda i: study["points"][i]["density"])
    limit = 0.0
    for i in order:
        if _point_ms(study, i)[0] >= share:
            break
        limit = study["points"][i]["density"]
    return round(limit, 4)


def split_alone(study: Row, table: Mapping[str, Any] | None = None) -> tuple[list[int], list[int]]:
    """The points ``train_many`` trains alone by the sparse path (density within both the
    bundle limit and ``auto``'s training crossover) and those it still batches."""
    limit = min(bundle_limit(study), _train_limit(study, table))
    alone = [i for i, p in enumerate(study["points"]) if p["density"] <= limit]
    return alone, [i for i in range(len(study["points"])) if i not in alone]


def _run_hours(step_ms: float, eval_ms: float) -> float:
    """Hours of one retraining: 10 epochs of steps and evaluations, and the epoch-0 evaluation."""
    epochs = FULL_PROFILE["retrain_epochs"]
    return (epochs * (_STEPS * step_ms + _EVALS * eval_ms) + _EVALS * eval_ms) / 3.6e6


def projection(study: Sequence[Row], table: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Hours of the full profile's pruning grid (one seed, 30 points per cell): as the runner
    retrains today (RNN/GRU points all at once, LSTM one by one on the dense path) and with the
    sparse path (``train_many`` training the points below its limits alone; LSTM's points by
    ``auto``), from this run's times."""
    out: dict[str, Any] = {}
    for row in study:
        ms, ev, n = row["ms"], row["eval_ms"], row["n_models"]
        bundled = CELLS[row["cell"]].fused_cpu  # the runner's bundle=auto (experiments.units)
        if bundled:
            today = _run_hours(ms["batched"], ev["batched"])
            alone, kept = split_alone(row, table)
            scale = row.get("batched_kept_scale") or (1.0 if kept else 0.0)
            new = _run_hours(ms["batched"] * scale, ev["batched"] * scale) if kept else 0.0
        else:
            today = n * _run_hours(ms["masked"], ev["masked"])
            limit = _train_limit(row, table)
            alone = [i for i, p in enumerate(row["points"]) if p["density"] <= limit]
            new = (n - len(alone)) * _run_hours(ms["masked"], ev["masked"])
        new += sum(_run_hours(*_point_ms(row, i)) for i in alone)
        out[row["cell"]] = {"today_h": today, "sparse_h": new, "alone": len(alone)}
    total_today = sum(v["today_h"] for v in out.values())
    total_new = sum(v["sparse_h"] for v in out.values())
    return {"cells": out, "today_h": total_today, "sparse_h": total_new,
            "speedup": total_today / total_new if total_new else None}  # fmt: skip


# ---------------------------------------------------------------------------------- targets
def _grid_ratio(grid: Sequence[Row], cell, hidden, batch, phase, s) -> float | None:
    for row in grid:
        if (row["cell"], row["hidden"], row["batch"], row["phase"]) == (cell, hidden, batch, phase):
            sparse = row["ms"].get(f"sparse@{s:g}")
            return None if sparse is None else row["ms"]["dense"] / sparse
    return None


def _study_ratio(study: Row, amount: int) -> float | None:
    key = f"sparse/both/{amount}"
    return study["ms"]["dense"] / study["ms"][key] if key in study["ms"] else None


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 24's targets, each measured ratio against its goal (met or missed by how much)."""
    rows: list[dict[str, Any]] = []
    grid = results["grid"]
    for cell in ("lstm", "gru"):
        for hidden in [h for h in results["config"]["hidden_sizes"] if h >= 256]:
            for s, goal in ((0.9, 3.0), (0.95, 5.0)):
                ratio = _grid_ratio(grid, cell, hidden, 1, "infer", s)
                what = f"inference {cell} H={hidden} batch 1 at {s:.0%}: SparseRNN vs torch.nn"
                rows.append({"target": what, "goal": goal, "ratio": ratio})
    for study in results["study"]:
        for amount, goal in ((90, 1.5), (80, 1.0)):
            what = f"training step 3x50 {study['cell']} at {amount}% (batch 32) vs torch.nn"
            rows.append({"target": what, "goal": goal, "ratio": _study_ratio(study, amount)})
    if results["study"]:
        proj = projection(results["study"], crossovers(results["grid"]))
        rows.append({"target": "projected pruning grid hours, today / sparse path", "goal": 1.5,
                     "ratio": proj["speedup"]})  # fmt: skip
    for r in rows:
        r["met"] = r["ratio"] is not None and r["ratio"] >= r["goal"]
    return rows


def _int_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    """A crossover table read back from JSON (hidden sizes and batches as ints again)."""
    return {
        cell: {ph: {int(h): {int(b): d for b, d in bb.items()} for h, bb in hh.items()}
               for ph, hh in phases.items()}
        for cell, phases in table.items()
    }  # fmt: skip


def auto_vs_dense(results: Mapping[str, Any]) -> float | None:
    """The worst (largest) time of ``auto``'s choice over the masked dense path's, across the
    grid rows' pruned variants, by the crossover table the package held when the run started
    (an earlier run's): ~1.0 or below means auto made no row slower. None without a table."""
    from sparsernn.nn.sparse_path import crossover_density

    table = _int_keys(results["meta"].get("crossover_at_start", {}).get("table", {}))
    if not table:
        return None
    worst = 0.0
    for row in results["grid"]:
        training = row["phase"] == "train"
        limit = crossover_density(row["cell"], row["hidden"], row["batch"], training, table)
        for s, ms in _sparse_times(row):
            chosen = ms if 0 < s and 1.0 - s <= limit else row["ms"]["masked"]
            worst = max(worst, chosen / row["ms"]["masked"])
    return worst


def auto_line(results: Mapping[str, Any]) -> str:
    start = results["meta"].get("crossover_at_start", {})
    worst = auto_vs_dense(results)
    if worst is None:
        return "auto: the package held no crossover table when this run started (nothing to check)"
    return (
        f"auto, by the table the package held when this run started ({start['measured']}, "
        f"commit {start['commit']}): its choice against MaskedRNN's dense path, worst pruned "
        f"row {worst:.2f}x of the dense path's time (1.00: never slower)"
    )


# ---------------------------------------------------------------------------------- text
def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def grid_line(row: Row) -> str:
    ms = row["ms"]
    sparse = "  ".join(f"{k[7:]} {v:.2f} ({ms['dense'] / v:.1f}x)"
                       for k, v in ms.items() if k.startswith("sparse@"))  # fmt: skip
    return (f"{row['cell']:<8} H {row['hidden']:>4} B {row['batch']:>2} {row['phase']:<5} "
            f"dense {ms['dense']:.2f} masked {ms['masked']:.2f} | sparse {sparse}")  # fmt: skip


def study_line(row: Row) -> str:
    ms = row["ms"]
    return (f"{row['cell']:<8} 3x50 bs {row['batch']} step: dense {ms['dense']:.2f} ms, masked "
            f"{ms['masked']:.2f}, sparse 80% {ms.get('sparse/both/80', float('nan')):.2f} "
            f"({_x(_study_ratio(row, 80))}), 90% {ms.get('sparse/both/90', float('nan')):.2f} "
            f"({_x(_study_ratio(row, 90))}), {row['n_models']} at once "
            f"{ms['batched']:.2f}")  # fmt: skip


def _md(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _grid_table(results: Mapping[str, Any], phase: str) -> list[str]:
    sparsities = results["config"]["sparsities"]
    header = ["cell", "H", "B", "dense ms", "masked ms", *(f"{s:.0%}" for s in sparsities),
              "pays from (vs torch.nn)"]  # fmt: skip
    rows = []
    for row in (r for r in results["grid"] if r["phase"] == phase):
        ratios = [_x(_grid_ratio([row], row["cell"], row["hidden"], row["batch"], phase, s))
                  for s in sparsities]  # fmt: skip
        s = crossover_sparsity(row, "dense")
        rows.append([row["cell"], row["hidden"], row["batch"], f"{row['ms']['dense']:.2f}",
                     f"{row['ms']['masked']:.2f}", *ratios,
                     "never" if s is None else f"{s:.0%}"])  # fmt: skip
    return _md(header, rows)


def crossover_markdown(
    results: Mapping[str, Any], table: Mapping[str, Any] | None = None
) -> list[str]:
    """The crossover table: the sparsity from which the sparse path beats MaskedRNN's dense
    path, per cell and hidden size (columns: phase and batch); this run's, or ``table``."""
    table = crossovers(results["grid"]) if table is None else _int_keys(table)
    batches = results["config"]["batch_sizes"]
    header = ["cell", "H", *(f"{p} B={b}" for p in ("inference", "training") for b in batches)]
    rows = []
    for cell, phases in table.items():
        for hidden in results["config"]["hidden_sizes"]:
            cells = []
            for phase in ("infer", "train"):
                for b in batches:
                    d = phases.get(phase, {}).get(hidden, {}).get(b)
                    cells.append("n/a" if d is None else "never" if d == 0 else f">= {1 - d:.0%}")
            rows.append([cell, hidden, *cells])
    return _md(header, rows)


def _memory_table(results: Mapping[str, Any]) -> list[str]:
    sparsities = results["config"]["sparsities"]
    header = ["H", "dense bytes", *(f"SparseRNN {s:.0%}" for s in sparsities), "peak RSS MB"]
    rows, seen = [], set()
    for row in results["grid"]:
        if row["phase"] != "infer" or row["hidden"] in seen:
            continue
        seen.add(row["hidden"])
        wb = row["weight_bytes"]
        rows.append([f"{row['hidden']} ({row['cell']})", wb["dense"],
                     *(f"{wb[f'sparse@{s:g}']} ({wb[f'sparse@{s:g}'] / wb['dense']:.0%})"
                       for s in sparsities),
                     f"{results['rss_mb'][str(row['hidden'])]:.0f}"])  # fmt: skip
    return _md(header, rows)


def _study_table(results: Mapping[str, Any]) -> list[str]:
    header = ["cell", "dense torch.nn ms", "masked ms", "sparse 80%", "sparse 90%",
              "30 at once ms"]  # fmt: skip
    rows = []
    for r in results["study"]:
        ms = r["ms"]
        rows.append([r["cell"], f"{ms['dense']:.2f}", f"{ms['masked']:.2f}",
                     f"{ms['sparse/both/80']:.2f} ({_x(_study_ratio(r, 80))})"
                     if "sparse/both/80" in ms else "n/a",
                     f"{ms['sparse/both/90']:.2f} ({_x(_study_ratio(r, 90))})"
                     if "sparse/both/90" in ms else "n/a",
                     f"{ms['batched']:.2f}"])  # fmt: skip
    return _md(header, rows)


def torch_sparse_markdown(results: Mapping[str, Any]) -> list[str]:
    """The torch.sparse trial: per hidden size and batch, dense torch.nn / each path."""
    rows = [
        [r["hidden"], r["batch"], f"{r['ms']['dense']:.2f}",
         _x(r["ms"]["dense"] / r["ms"]["torch.sparse"]), _x(r["ms"]["dense"] / r["ms"]["compiled"]),
         f"{r['block_fill']:.0%}"]
        for r in results.get("torch_sparse", [])
    ]  # fmt: skip
    header = ["H", "B", "dense torch.nn ms", "torch.sparse CSR loop", "compiled layer",
              "4x4 blocks a BSR would store"]  # fmt: skip
    return _md(header, rows)


def format_sparse_report(results: Mapping[str, Any]) -> str:
    """The whole run as Markdown: header, tables, projection, targets."""
    m = results["meta"]
    lines = [
        f"sparse section, {m['date']}, commit {m['commit']}: torch {m['torch']}, "
        f"{m['threads']} thread of {m['cpu_count']} CPUs, load average "
        f"{m['load_avg_start']:.1f} -> {m.get('load_avg_end', float('nan')):.1f} (a shared, "
        f"loaded machine: compare ratios within a row only); compiled layer: {m['compiled']}",
        f"timing: {m['timing']}; {results['config']['steps']} time steps, one layer, "
        "input size = hidden size; ratios are dense torch.nn ms / sparse ms",
        "", "torch.sparse first: LSTM inference at 90% (speed-up over dense torch.nn)", "",
        *torch_sparse_markdown(results),
        "", "Inference (forward without autograd): SparseRNN", "",
        *_grid_table(results, "infer"),
        "", "Training step (forward, backward, Adam): MaskedRNN(kernel='sparse')", "",
        *_grid_table(results, "train"),
        "", "Crossover: sparse pays (beats MaskedRNN's dense path) from this sparsity on", "",
        *crossover_markdown(results),
        "", "Memory: stored weight bytes (values, indices, biases)", "",
        *_memory_table(results),
    ]  # fmt: skip
    if results["study"]:
        proj = projection(results["study"], crossovers(results["grid"]))
        lines += ["", "The study's 3x50 classifier, training step at batch 32 (TrainStep)", "",
                  *_study_table(results), "",
                  "Projection of the full profile's pruning grid (hours, one seed, training "
                  f"and evaluation): today {proj['today_h']:.2f} h, with the sparse path "
                  f"{proj['sparse_h']:.2f} h -> {_x(proj['speedup'])}; per cell "
                  + ", ".join(f"{c} {v['today_h']:.2f} -> {v['sparse_h']:.2f} h "
                              f"({v['alone']} points alone)"
                              for c, v in proj["cells"].items())]  # fmt: skip
    lines += ["", "Targets (issue 24)", "",
              *_md(["target", "goal", "measured", "met"],
                   [[t["target"], f">= {t['goal']:g}x", _x(t["ratio"]),
                     "met" if t["met"] else f"missed ({_x(t['ratio'])} of {t['goal']:g}x)"]
                    for t in targets(results)]),
              "", auto_line(results)]  # fmt: skip
    return "\n".join(lines)


def crossover_json(results: Mapping[str, Any]) -> str:
    """The text of ``sparsernn/nn/sparse_crossover.json`` for this run's crossovers (what
    :func:`sparsernn.nn.sparse_path.load_crossover` reads)."""
    m = results["meta"]
    table = {cell: dict(phases) for cell, phases in crossovers(results["grid"]).items()}
    for row in results["study"]:
        table.setdefault(row["cell"], {})["bundle"] = {50: {int(row["batch"]): bundle_limit(row)}}
    data = {"measured": m["date"], "commit": m["commit"], "machine": _machine(m), "table": table}
    return json.dumps(data, indent=1) + "\n"


def _machine(m: Mapping[str, Any]) -> str:
    return (
        f"torch {m['torch']}, {m['machine']}, {m['cpu_count']} CPUs, 1 thread, "
        f"load average {m['load_avg_start']:.1f}"
    )
