"""Measure what a dense 3x50 GRU (the study's base model) reaches on each task.

Prints the Markdown table quoted in ``docs/tasks.md``. Run from the repository root::

    OMP_NUM_THREADS=1 python docs/make_tasks_doc.py > tasks_measured.md

Every row trains one model from one seed with the study's optimiser settings (Adam, lr 1e-3,
batch 32, clip 5) on ``N_EXAMPLES`` examples (75 % train, 25 % test; digits: all 1797) for
``EPOCHS`` epochs, and reports the test scores after the last epoch. About 15 minutes on one
core.
"""

from __future__ import annotations

import sys
import time

from sparsernn.data import DataSpec
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import chance_level, model_fields, task_data
from sparsernn.train import TrainConfig, fit

N_EXAMPLES = 4000
EPOCHS = 20
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
    spec = DataSpec(task=task, n_strings=N_EXAMPLES, difficulty=difficulty, seed=0)
    train, test = task_data(spec)
    model = build_model(ModelConfig(cell="gru", **model_fields(spec)), seed=0)
    t0 = time.perf_counter()
    history = fit(model, train, test, TrainConfig(epochs=EPOCHS, seed=0))
    last = history[-1]
    return {
        "task": task if difficulty is None else f"{task} (difficulty {difficulty})",
        "n": f"{len(train)} / {len(test)}",
        "chance": chance_level(spec),
        "accuracy": last["test_accuracy"],
        "loss": last["test_loss"],
        "first_loss": history[0]["train_loss"],
        "minutes": (time.perf_counter() - t0) / 60,
    }


def main() -> None:
    print(f"| task | train / test | chance | test accuracy after {EPOCHS} epochs "
          "| test loss | train loss, epoch 1 | minutes |")
    print("|---|---|---|---|---|---|---|")
    for task, difficulty in ROWS:
        r = measure(task, difficulty)
        print(
            f"| {r['task']} | {r['n']} | {r['chance']:.3f} | {r['accuracy']:.3f} "
            f"| {r['loss']:.4f} | {r['first_loss']:.4f} | {r['minutes']:.1f} |",
            flush=True,
        )
        print(f"done {r['task']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
