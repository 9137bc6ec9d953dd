"""The benchmark's results as plain-text lines and tables."""

from __future__ import annotations

from typing import Any

__all__ = ["cell_line", "many_line", "structured_line", "format_report"]

Row = dict[str, Any]


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def cell_line(r: Row) -> str:
    """One training-step row: (a) reference, (b) ours, (c) dense, their ratios and memory."""
    saved = "/".join(_f(r.get(f"{v}_saved_mb")) for v in ("reference", "masked", "dense"))
    line = (
        f"{r['cell']:<9} bs {r['batch_size']:>3}  len {r['mean_len']:4.1f}  "
        f"(a) ref {_f(r.get('reference_ms')):>7}  (b) masked {_f(r['masked_ms']):>6}  "
        f"(c) dense {_f(r['dense_ms']):>6}  b/a {_f(r['b_over_a'], '{:.2f}'):>5}  "
        f"b/c {_f(r['b_over_c'], '{:.2f}'):>5}  saved MB a/b/c {saved}"
    )
    if "masked_gflops" in r:
        share = 100 * r["masked_peak_fraction"]
        line += f"  (b) {r['masked_gflops']:.0f} GFLOP/s = {share:.0f}% peak"
    return line


def many_line(r: Row) -> str:
    """One K-models-at-once row: ms per step at once and one by one, and the FLOP rates."""
    line = (
        f"{r['cell']:<9} K={r['n_models']} {r['kind']} bs {r['batch_size']}: "
        f"{_f(r['batched_ms'])} ms/step = {_f(r['per_model_ms'], '{:.2f}')} ms per model vs "
        f"{_f(r['one_by_one_ms'], '{:.2f}')} one by one -> {_f(r['speedup'], '{:.2f}')}x"
    )
    if "ceiling_speedup" in r:
        rates = f"{_f(r['single_gflops'], '{:.0f}')} -> {_f(r['batched_gflops'], '{:.0f}')}"
        line += f"  [{rates} GFLOP/s; ceiling {_f(r['ceiling_speedup'], '{:.1f}')}x]"
    return line


def structured_line(r: Row) -> str:
    """One random-structure row: reference vs ours (the layer schedule, by the compiled loop
    where it is built) and the same schedule by PyTorch ops; and (once the peak is known) the
    FLOP counts per step with their rates."""
    kernel = "native" if r.get("native") else "torch (compiled loop unavailable)"
    line = (
        f"{r['cell']:<9} {r['graph']:<6} layers {r['layers']:>2} sub-layers {r['sublayers']:>3} "
        f"bs {r['batch_size']}: ref {_f(r['reference_ms']):>7} ours {_f(r['ours_ms']):>6} "
        f"-> {_f(r['speedup'], '{:.2f}x')}  [{kernel}]  torch layers {_f(r.get('torch_ms')):>6} "
        f"-> {_f(r.get('native_speedup'), '{:.2f}x')}"
    )
    if "executed_gflops" in r:
        rates = "  ".join(
            f"{label} {r[f'{kind}_gflop']:.2f} GFLOP {r[f'{kind}_gflops']:.1f} GFLOP/s "
            f"= {100 * r[f'{kind}_peak_fraction']:.0f}% peak"
            for kind, label in (
                ("executed", "torch executed"),
                ("useful", "ours useful"),
            )
        )
        equivalent = (
            f"ours at the dense count {r['equivalent_gflops']:.1f} GFLOP/s "
            f"= {100 * r['equivalent_peak_fraction']:.0f}% peak"
        )
        line += f"\n{'':<10}[{rates}; {equivalent}]"
    return line


def _projection_lines(proj: dict[str, Any]) -> list[str]:
    """The projected hours per variant and part, and the base epoch time per cell."""
    cores = proj.get("cores", 1)
    parts = ("base", "pruning", "structure", "total", "wall")
    widths = (8, 8, 9, 8, 17)
    heads = (*parts[:4], f"wall on {cores} cores")
    lines = ["", "Projected wall time of the full profile (hours)"]
    lines.append(f"{'':<10} " + " ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    for name, h in proj["hours"].items():
        cells = (f"{_f(h.get(p), '{:.2f}'):>{w}}" for p, w in zip(parts, widths, strict=True))
        lines.append(f"{name:<10} " + " ".join(cells))
    lines.append("(total: one single-threaded process; wall: the units spread over the cores)")
    kernels = proj.get("structure_by_kernel", {})
    if kernels.get("torch") is not None and kernels.get("ours") is not None:
        lines.append(
            f"structure: {kernels['ours']:.2f} h with the layer schedule as it ran (ours) vs "
            f"{kernels['torch']:.2f} h in PyTorch ops (kernel='torch'): "
            f"{kernels['torch'] / kernels['ours']:.2f}x"
        )
    lines.append(proj["note"])
    epochs = ", ".join(f"{c} {_f(v)}" for c, v in proj["base_epoch_s"].items())
    lines.append(f"base epoch (18,750 strings, batch 32, + evaluation), s: {epochs}")
    return lines


def format_report(results: dict[str, Any]) -> str:
    """The results as plain-text tables (training step, ms, median)."""
    m = results["meta"]
    peak = _f(m.get("peak_gflops"), "{:.0f}")
    lines = [
        f"sparsernn benchmark: torch {m['torch']}, device {m['device']}, "
        f"{m['threads']} thread(s) of {m['cpu_count']} CPUs, load avg {m['load_avg_start']:.1f}"
        f" -> {m.get('load_avg_end', float('nan')):.1f}",
        f"timing: {m['timing']}; memory: {m['memory']}",
        "",
        "Training step (ms): (a) slow reference, (b) MaskedRNN 80% sparse, (c) dense torch.nn",
        *map(cell_line, results["cells"]),
        "",
        "K models at once (pruning copies); [matmul GFLOP/s per model one by one -> at once; "
        f"ceiling = peak {peak} GFLOP/s / one by one]",
        *map(many_line, results["many"]),
        "",
        "StructuredRNN training step (ms): slow reference vs ours (layer schedule, compiled "
        "loop), the same schedule in PyTorch ops (torch layers, and its time / ours); "
        "[matmul GFLOP per step (3x forward), rate and share of the peak: executed by the "
        "PyTorch layer schedule (every wide layer dense), useful (masked i2h + block-diagonal "
        "h2h: what the compiled loop computes)]",
        *map(structured_line, results["structured"]),
    ]
    if results.get("projection"):
        lines += _projection_lines(results["projection"])
    lines.append(f"peak RSS {m.get('peak_rss_mb', 0):.0f} MB")
    return "\n".join(lines)
