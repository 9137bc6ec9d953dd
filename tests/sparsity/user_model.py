"""A model as a user writes it, for the sparsify tests: an embedding, a 2-layer bidirectional
``nn.LSTM`` (batch_first), an ``nn.GRU`` (time first) and a linear head."""

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, CLASSES = 12, 5


class UserModel(nn.Module):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.encoder = nn.LSTM(8, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.decoder = nn.GRU(2 * hidden, hidden)
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder(self.embed(tokens))  # (B, T, 2H)
        h, _ = self.decoder(h.transpose(0, 1))  # (T, B, H)
        return self.head(h[-1])  # (B, C)


def user_model(seed: int = 0, dtype=torch.float64) -> UserModel:
    torch.manual_seed(seed)
    return UserModel().to(dtype)


def user_batch(seed: int = 0, batch: int = 6, steps: int = 7):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (batch, steps), generator=gen)
    labels = torch.randint(0, CLASSES, (batch,), generator=gen)
    return tokens, labels


def loss_of(model: nn.Module, batch) -> torch.Tensor:
    tokens, labels = batch
    return F.cross_entropy(model(tokens), labels)


def recurrent_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The recurrent weight matrices by qualified name (``encoder.weight_hh_l0_reverse``)."""
    return {
        f"{prefix}.{name}": p
        for prefix, mod in model.named_modules()
        if isinstance(mod, nn.RNNBase) or hasattr(mod, "masks")
        for name, p in mod.named_parameters(recurse=False)
        if name.startswith("weight")
    }
