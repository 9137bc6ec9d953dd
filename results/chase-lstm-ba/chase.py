"""Chase (2026-12-08, main at b319148 plus the TaskData change): the 7 LSTM networks of the
full study that ended at chance (test accuracy < 0.6, all on BA graphs). Each is retrained
from its stored unit config, first with the unit's own initialisation seed (does the current
code reproduce the stored accuracy?), then with three other initialisation seeds (is the
failure the graph's or the draw's?).

Run from the repository root with the full study's store in runs/full:
    .venv/bin/python results/chase-lstm-ba/chase.py > results/chase-lstm-ba/chase.out
Each output line: graph_id, then per run (seed variant: None = the unit's own; final test
accuracy; test accuracy after epochs 1, 6 and 11; seconds). retrain.csv holds the same runs
as a table (init "unit" = the unit's own seed; accuracies at the 3 decimals printed here),
for docs/structure.md; this script writes it too.
"""
import json, sqlite3, sys, time
sys.path.insert(0, "src")
from sparsernn.experiments.units import _with_runtime, _run_structure
import sparsernn.experiments.units as U
from sparsernn._seed import derive_seed

c = sqlite3.connect("file:runs/full/results.sqlite?mode=ro", uri=True)
rows = [json.loads(r[0]) for r in c.execute("select config from units where kind='structure'")]
want = {35, 39, 41, 68, 75, 86, 97}
cfgs = [r for r in rows if r["cell"] == "lstm" and r["generator"] == "ba" and r["graph_id"] in want]
print(len(cfgs), "units", flush=True)
orig = U.derive_seed
table = []
for cfg in sorted(cfgs, key=lambda r: r["graph_id"]):
    out = []
    for extra in (None, "alt1", "alt2", "alt3"):
        if extra is None:
            U.derive_seed = orig
        else:
            U.derive_seed = lambda *a, _e=extra: orig(*a, _e)
        t = time.time()
        res = _run_structure(_with_runtime({"kind": "structure", "config": cfg}))
        curve = [round(r["test_accuracy"], 3) for r in res["curve"]]
        out.append((extra, curve[-1], curve[::5], round(time.time() - t)))
    U.derive_seed = orig
    print(cfg["graph_id"], out, flush=True)
    for extra, final, curve, secs in out:
        table.append({"cell": "lstm", "generator": "ba", "graph_id": cfg["graph_id"],
                      "init": extra or "unit", "final_accuracy": final,
                      "accuracy_epoch_1": curve[0], "accuracy_epoch_6": curve[1],
                      "accuracy_epoch_11": curve[2], "seconds": secs})
import csv
with open("results/chase-lstm-ba/retrain.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
