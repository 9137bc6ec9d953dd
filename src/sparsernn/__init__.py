"""sparsernn: study sparsity in recurrent neural networks (magnitude pruning, random structure)."""

__version__ = "0.1.0"
