"""A bidirectional GRU classifying scikit-learn's handwritten digits, pruned with AGP.

Each 8x8 image is read as a sequence of 8 rows of 8 pixels; a bidirectional GRU reads it both
ways and a linear layer classifies its two final states. The dense model and one pruned
gradually (automated gradual pruning: the sparsity rises along a cubic to ``--sparsity``
during training) train on the same data from the same initialisation::

    python examples/digits_gru.py                   # dense and AGP to 90%
    python examples/digits_gru.py --sparsity 0.95 --epochs 40 --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from sparsernn import sparsify


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run (defaults: well under a minute on two CPU cores)."""

    prune: bool = True  # False: the dense model
    sparsity: float = 0.9
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    hidden_size: int = 64
    lr: float = 3e-3
    update_every: int = 10  # AGP prunes every this many steps
    n_samples: int = 0  # 0: all 1797 images
    threads: int = 1


class DigitsGRU(nn.Module):
    """Rows of the image -> bidirectional GRU -> both final states -> 10 classes."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.gru = nn.GRU(8, hidden_size, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, 10)

    def forward(self, images: Tensor) -> Tensor:
        _, h_n = self.gru(images)  # h_n: (2, B, H), forward and reverse
        return self.head(torch.cat([h_n[0], h_n[1]], dim=1))  # (B, 10)


def digits(cfg: Config):
    """Train and test tensors: images (N, 8 rows, 8 pixels) scaled to [0, 1], labels."""
    data = load_digits()
    x = data.images.astype(np.float32) / 16.0
    y = data.target
    if cfg.n_samples:
        x, y = x[: cfg.n_samples], y[: cfg.n_samples]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0)
    return (torch.from_numpy(x_tr), torch.from_numpy(y_tr)), (
        torch.from_numpy(x_te),
        torch.from_numpy(y_te),
    )


def run(cfg: Config) -> dict:
    """Train one model; return its test accuracy and achieved sparsity."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    (x_tr, y_tr), (x_te, y_te) = digits(cfg)
    model = DigitsGRU(cfg.hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = -(-len(x_tr) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sp = None
    if cfg.prune:  # reach the sparsity at two thirds of training, then fine-tune
        span = max(cfg.update_every, 2 * total // 3 // cfg.update_every * cfg.update_every)
        sp = sparsify(model, "agp", cfg.sparsity, optimizer=opt, seed=cfg.seed,
                      n_steps=span, update_every=cfg.update_every)  # fmt: skip
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sp is not None:
                sp.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_te).argmax(1) == y_te).float().mean().item()
    report = sp.report() if sp is not None else None
    achieved = 0.0 if report is None else 1 - report["kept"].sum() / report["size"].sum()
    return {"accuracy": accuracy, "achieved_sparsity": float(achieved), "report": report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Config):
        if field.name != "prune":
            flag = f"--{field.name.replace('_', '-')}"
            parser.add_argument(flag, type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if f.name != "prune"
    }
    dense = run(Config(prune=False, **values))
    pruned = run(Config(prune=True, **values))
    print(f"dense:        test accuracy {dense['accuracy']:.3f}")
    print(f"AGP to {args.sparsity:.0%}: test accuracy {pruned['accuracy']:.3f} "
          f"({pruned['achieved_sparsity']:.3f} of the GRU's weights are zero)")  # fmt: skip
    by_matrix = pruned["report"].groupby(["direction", "kind"])[["kept", "size"]].sum()
    print((1 - by_matrix["kept"] / by_matrix["size"]).rename("sparsity").to_string())


if __name__ == "__main__":
    main()
