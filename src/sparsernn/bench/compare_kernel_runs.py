"""Tables of ``docs/structure.md``'s measured runs: the compiled loop against the PyTorch path.

``python -m sparsernn.bench.compare_kernel_runs NATIVE_DIR TORCH_DIR`` reads two structure
studies of the same protocol, one run with the compiled time loop (the default) and one with
``SPARSERNN_NATIVE=0`` (the PyTorch layer schedule), and prints Markdown: per cell, the units
both ran (same graphs, same seeds) with their summed unit times, the paired ratio of unit
times and the paired accuracy differences (the same function, so only float rounding, which
training amplifies: 0 belongs inside their interval); then the native run over all its units.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sparsernn.analysis.stats import mean_ci
from sparsernn.experiments import load_results

__all__ = ["KEYS", "main", "paired", "speed_table", "totals_table"]

KEYS = ["cell", "generator", "graph_id", "seed"]


def paired(native: pd.DataFrame, torch_: pd.DataFrame) -> pd.DataFrame:
    """The units both studies ran, one row each, with both unit times and accuracies."""
    cols = [*KEYS, "nodes", "wall_s", "test_accuracy"]
    return native[cols].merge(torch_[cols], on=[*KEYS, "nodes"], suffixes=("_native", "_torch"))


def speed_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (and all): units, summed unit minutes both ways, ratio, paired ratio quartiles."""
    rows = []
    for cell, g in [*pairs.groupby("cell", sort=False), ("all", pairs)]:
        ratio = g["wall_s_torch"] / g["wall_s_native"]
        q = np.percentile(ratio, [25, 50, 75])
        rows.append(
            {
                "cell": cell,
                "units": len(g),
                "PyTorch path, min": round(g["wall_s_torch"].sum() / 60, 1),
                "compiled loop, min": round(g["wall_s_native"].sum() / 60, 1),
                "total ratio": round(g["wall_s_torch"].sum() / g["wall_s_native"].sum(), 2),
                "unit ratio, median [IQR]": f"{q[1]:.2f} [{q[0]:.2f}, {q[2]:.2f}]",
                "accuracy, compiled - PyTorch, mean [95% CI]": _diff(g),
                "max |difference|": round(
                    (g["test_accuracy_native"] - g["test_accuracy_torch"]).abs().max(), 3
                ),
            }
        )
    return pd.DataFrame(rows)


def _diff(g: pd.DataFrame) -> str:
    """Mean paired accuracy difference with its t-interval: 0 inside when the two kernels
    train the same function (they differ by float rounding, which training amplifies)."""
    mean, lo, hi = mean_ci(g["test_accuracy_native"] - g["test_accuracy_torch"])
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def totals_table(native: pd.DataFrame) -> pd.DataFrame:
    """The native study over all its units: count, summed unit time, mean accuracy per cell."""
    out = native.groupby("cell", sort=False).agg(
        units=("wall_s", "size"),
        unit_minutes=("wall_s", lambda s: round(s.sum() / 60, 1)),
        mean_accuracy=("test_accuracy", lambda s: round(s.mean(), 3)),
    )
    return out.reset_index()


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of ``python -m sparsernn.bench.compare_kernel_runs``."""
    parser = argparse.ArgumentParser(
        prog="python -m sparsernn.bench.compare_kernel_runs",
        description=(__doc__ or "").splitlines()[0],
    )
    parser.add_argument("native_dir")
    parser.add_argument("torch_dir")
    args = parser.parse_args(argv)
    native = load_results(args.native_dir).structure
    torch_ = load_results(args.torch_dir).structure
    print(speed_table(paired(native, torch_)).to_markdown(index=False))
    print()
    print(totals_table(native).to_markdown(index=False))
    print(
        f"\n{len(native)} networks with the compiled loop, "
        f"{native['wall_s'].sum() / 60:.1f} unit-minutes"
    )


if __name__ == "__main__":
    main()
