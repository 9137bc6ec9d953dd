"""Measure what a dense 3x50 GRU (the study's base model) reaches on each task, as data.

Writes ``results/tasks/tasks.csv`` (one row per task) and ``results/tasks/manifest.json`` (when,
which commit, which machine, the settings); ``make docs`` renders docs/tasks.md's table from
them. Run from the repository root (about 25 minutes of one core)::

    make results-tasks        # = OMP_NUM_THREADS=1 python docs/measure_tasks.py results/tasks

Every row trains one model from seed 0 with the study's optimiser settings (Adam, lr 1e-3,
batch 32, clip 5) on ``N_EXAMPLES`` examples (75% train, 25% test; digits: all 1797) for
``EPOCHS`` epochs and records the test scores after the last epoch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from sparsernn._provenance import environment, now
from sparsernn.data import DataSpec
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import chance_level, model_fields, spec_fields, task_data
from sparsernn.train import TrainConfig, fit

N_EXAMPLES = 4000
EPOCHS = 20
SEED = 0
#: (task, difficulty): each task at its default difficulty, and an easier parity.
ROWS = [
    ("reber", None),
    ("embedded_reber", None),
    ("adding", None),
    ("adding_regression", None),
    ("copy", None),
    ("parity", None),
    ("parity", 10),
    ("digits", None),
]


def measure(task: str, difficulty: int | None) -> dict[str, object]:
    """Train the dense 3x50 GRU on one task; its final test scores and the time it took."""
    raw = dict(task=task, n_strings=N_EXAMPLES, difficulty=difficulty, seed=SEED)
    spec = DataSpec.from_dict(spec_fields(raw))  # a grammar task moves to grammar; digits capped
    train, test = task_data(spec)
    model = build_model(ModelConfig(cell="gru", **model_fields(spec)), seed=SEED)
    t0 = time.perf_counter()
    history = fit(model, train, test, TrainConfig(epochs=EPOCHS, seed=SEED))
    last = history[-1]
    return {
        "task": task,
        "difficulty": difficulty,
        "n_train": len(train),
        "n_test": len(test),
        "chance": chance_level(spec),
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "first_train_loss": history[0]["train_loss"],
        "minutes": (time.perf_counter() - t0) / 60,
    }


def _shown(folder: Path) -> str:
    """``folder`` as the manifest records it: relative to the working directory when inside."""
    try:
        return folder.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return folder.name


def main(out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    started = now()
    rows = []
    for task, difficulty in ROWS:
        rows.append(measure(task, difficulty))
        print(f"done {task} {difficulty or ''}", file=sys.stderr, flush=True)
    pd.DataFrame(rows).to_csv(folder / "tasks.csv", index=False, lineterminator="\n")
    manifest = {
        "format": "sparsernn-tasks",
        "started": started,
        "finished": now(),
        "command": ["python", "docs/measure_tasks.py", _shown(folder)],
        "settings": {
            "n_examples": N_EXAMPLES,
            "epochs": EPOCHS,
            "seed": SEED,
            "cell": "gru",
            "model": "3x50, embedding 50",
            "threads": 1,
        },
        **environment(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/tasks")
