"""A character-level language model on Python's own source code, trained dense, pruned by
magnitude, or trained sparse with RigL: bits per character on held-out files.

The model is what a user writes (Embedding -> 2-layer nn.LSTM -> Linear) with a plain
training loop; sparsernn enters with two lines, ``sp = sparsify(...)`` and ``sp.step()``::

    python examples/char_lm.py                      # dense, magnitude and RigL at 90%
    python examples/char_lm.py --methods rigl --sparsity 0.8 --steps 3000 --seed 1

The text is the standard library of the Python running the script (a fixed list of files, the
same on every machine with that Python version): :data:`TRAIN_FILES` for training,
:data:`HELD_OUT_FILES` for the bits per character. Only the recurrent weights are pruned;
``sparsity`` counts them (the embedding and output layer stay dense).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn import sparsify

#: Training text: these modules of the running Python's standard library.
TRAIN_FILES = (
    "argparse.py",
    "collections/__init__.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "functools.py",
    "inspect.py",
    "logging/__init__.py",
    "pickle.py",
    "shutil.py",
    "subprocess.py",
    "tarfile.py",
    "textwrap.py",
    "threading.py",
)
#: Held-out text, never trained on: the bits per character are measured here.
HELD_OUT_FILES = ("configparser.py", "csv.py")
#: Characters outside printable ASCII (plus tab and newline) share one symbol.
ALPHABET = "\t\n" + "".join(chr(c) for c in range(32, 127))


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run (defaults: a few minutes on two CPU cores)."""

    method: str = "dense"  # dense, or a sparsernn method: magnitude, rigl, agp, set, ...
    sparsity: float = 0.9  # of the LSTM's weights (ignored by dense)
    seed: int = 0
    steps: int = 1500
    batch_size: int = 32
    seq_len: int = 64
    embedding_dim: int = 32
    hidden_size: int = 128
    lr: float = 3e-3
    clip: float = 1.0
    update_every: int = 100  # RigL/SET mask updates, AGP pruning steps
    held_out_chars: int = 40_000  # 0: all of the held-out files
    train_chars: int = 0  # 0: all of the training files
    threads: int = 1


class CharLM(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear, predicting the next character."""

    def __init__(self, vocab: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab)

    def forward(self, x: Tensor, state=None):
        out, state = self.lstm(self.embed(x), state)  # (B, T, H)
        return self.head(out), state  # (B, T, V)


def read_text(files: tuple[str, ...], limit: int = 0) -> str:
    """The files of the standard library, joined (the first ``limit`` characters, if > 0)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is not in this Python's standard library {root}")
    text = "\n".join((root / f).read_text(encoding="utf-8") for f in files)
    return text[:limit] if limit else text


def encode(text: str) -> Tensor:
    """Character codes: the index in :data:`ALPHABET`, or ``len(ALPHABET)`` for any other."""
    index = {c: i for i, c in enumerate(ALPHABET)}
    return torch.tensor([index.get(c, len(ALPHABET)) for c in text], dtype=torch.long)


def batches(codes: Tensor, cfg: Config, gen: torch.Generator):
    """Random windows ``(x, y)`` of ``seq_len`` characters, ``y`` shifted by one, forever."""
    while True:
        start = torch.randint(0, len(codes) - cfg.seq_len - 1, (cfg.batch_size,), generator=gen)
        idx = start[:, None] + torch.arange(cfg.seq_len + 1)
        window = codes[idx]  # (B, T + 1)
        yield window[:, :-1], window[:, 1:]


@torch.no_grad()
def bits_per_char(model: CharLM, codes: Tensor, streams: int = 16, seq_len: int = 256) -> float:
    """Mean -log2 p(next character) over ``codes``, read as ``streams`` parallel streams whose
    state is carried from one window to the next (as the word_language_model example)."""
    model.eval()
    n = (len(codes) - 1) // streams
    x_all = codes[: n * streams].view(streams, n)
    y_all = codes[1 : n * streams + 1].view(streams, n)
    state, total = None, 0.0
    for t in range(0, n, seq_len):
        logits, state = model(x_all[:, t : t + seq_len], state)
        total += F.cross_entropy(
            logits.flatten(0, 1), y_all[:, t : t + seq_len].flatten(), reduction="sum"
        ).item()
    model.train()
    return total / (n * streams) / math.log(2)


def run(cfg: Config, train_text: str | None = None, held_out_text: str | None = None) -> dict:
    """Train one model; return its held-out bits per character and achieved sparsity."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train = encode(
        train_text if train_text is not None else read_text(TRAIN_FILES, cfg.train_chars)
    )
    held = encode(
        held_out_text
        if held_out_text is not None
        else read_text(HELD_OUT_FILES, cfg.held_out_chars)
    )
    model = CharLM(len(ALPHABET) + 1, cfg.embedding_dim, cfg.hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sp = None
    if cfg.method != "dense":  # the two lines sparsernn adds to a user's loop (and sp.step())
        sp = sparsify(
            model, cfg.method, cfg.sparsity, optimizer=opt, seed=cfg.seed, **method_options(cfg)
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    windows = batches(train, cfg, gen)
    for _ in range(cfg.steps):
        x, y = next(windows)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if sp is not None:
            sp.step()
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    achieved = 0.0
    if sp is not None:
        report = sp.report()
        achieved = 1 - report["kept"].sum() / report["size"].sum()
    return {
        "bpc": bits_per_char(model, held),
        "achieved_sparsity": float(achieved),
        "train_loss_bits": loss.item() / math.log(2),
        "train_s": train_s,  # wall clock
        "train_cpu_s": train_cpu_s,  # this process's CPU time
    }


def method_options(cfg: Config) -> dict:
    """Each method's schedule, scaled to the run's length."""
    if cfg.method in ("magnitude", "random", "snip"):
        return {"at_step": cfg.steps // 2}  # dense first half, then prune and fine-tune
    if cfg.method in ("rigl", "set"):
        return {"update_every": cfg.update_every, "end_step": int(0.75 * cfg.steps)}
    if cfg.method == "agp":
        return {"update_every": cfg.update_every, "n_steps": int(0.5 * cfg.steps)}
    return {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="dense,magnitude,rigl", help="comma list")
    for field in dataclasses.fields(Config):
        if field.name != "method":
            parser.add_argument(
                f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
            )
    args = parser.parse_args(argv)
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if f.name != "method"
    }
    train_text = read_text(TRAIN_FILES, values["train_chars"])
    held_out_text = read_text(HELD_OUT_FILES, values["held_out_chars"])
    print(f"{len(train_text):,} training and {len(held_out_text):,} held-out characters")
    print(f"{'method':>10} {'sparsity':>9} {'bpc':>7} {'train s':>8}")
    for method in args.methods.split(","):
        res = run(Config(method=method, **values), train_text, held_out_text)
        sparse, bpc, seconds = res["achieved_sparsity"], res["bpc"], res["train_s"]
        print(f"{method:>10} {sparse:>9.3f} {bpc:>7.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
