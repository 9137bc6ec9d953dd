"""Write networks in the study's saved formats (SPEC 7) and run them with a slow reference.

Everything here is written from the SPEC text alone, independent of ``sparsernn.nn`` and
``sparsernn.graphs``: the layering is computed with plain loops, the masks are built in the
study's row layout (``np.repeat`` of edge rows for GRU/LSTM), and :func:`reference_logits` runs
the network layer by layer and time step by time step with PyTorch's per-gate equations,
multiplying every weight by its saved mask.
"""

from __future__ import annotations

import numpy as np
import torch

N_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "mask_i2h", "mask_h2h")


# ------------------------------------------------------------------------------ graph layering
def study_layers(graph) -> list[list[int]]:
    """SPEC 5: edges point from the smaller node to the larger; layer = longest path length."""
    nodes = sorted(graph.nodes())
    layer = {}
    for v in nodes:  # ascending order is a topological order of the low -> high DAG
        preds = [u for u in graph.neighbors(v) if u < v]
        layer[v] = 1 + max(layer[u] for u in preds) if preds else 0
    out = [[] for _ in range(max(layer.values()) + 1)]
    for v in nodes:
        out[layer[v]].append(v)
    return out


def edge_matrix(graph, layers, s: int, t: int) -> np.ndarray:
    """(|t|, |s|) float 0/1: entry [j, i] is 1 iff an edge joins layers[s][i] and layers[t][j]."""
    m = np.zeros((len(layers[t]), len(layers[s])), dtype=np.float32)
    for j, v in enumerate(layers[t]):
        for i, u in enumerate(layers[s]):
            if graph.has_edge(u, v):
                m[j, i] = 1.0
    return m


def skip_pairs(graph, layers) -> list[tuple[int, int]]:
    """The study's skip layers in saved order: t = 2..L-1, then s = 0..t-2, if any edge."""
    out = []
    for t in range(2, len(layers)):
        for s in range(t - 1):
            if edge_matrix(graph, layers, s, t).any():
                out.append((s, t))
    return out


# ------------------------------------------------------------------------------ writing
def _layer(gen, cell, n_in, n_out, ih_mask, hh_mask):
    g = N_GATES[cell]
    return {
        "weight_ih": torch.randn(g * n_out, n_in, generator=gen) * 0.4,
        "weight_hh": torch.randn(g * n_out, n_out, generator=gen) * 0.4,
        "bias_ih": torch.randn(g * n_out, generator=gen) * 0.1,
        "bias_hh": torch.randn(g * n_out, generator=gen) * 0.1,
        "mask_i2h": ih_mask,
        "mask_h2h": hh_mask,
    }


def _put(state, prefix, tensors):
    for name, value in tensors.items():
        state[f"{prefix}.{name}"] = value


def base_state(cell, hidden=6, emb=5, n_layers=3, mask_dtype=torch.bool, keep=1.0, seed=0):
    """A base / pruning model (SPEC 7). ``keep < 1`` prunes: each mask entry is kept with that
    probability, and the stored weights keep their (nonzero) values at pruned entries."""
    gen = torch.Generator().manual_seed(seed)
    g = N_GATES[cell]
    state = {"embedding.weight": torch.randn(128, emb, generator=gen)}
    for k in range(n_layers):
        n_in = emb if k == 0 else hidden
        masks = [
            (torch.rand(g * hidden, cols, generator=gen) < keep).to(mask_dtype)
            for cols in (n_in, hidden)
        ]
        _put(state, f"recurrent.recurrent_layers.{k}", _layer(gen, cell, n_in, hidden, *masks))
    state["out.weight"] = torch.randn(2, hidden, generator=gen)
    state["out.bias"] = torch.randn(2, generator=gen)
    return state


def structure_state(graph, cell, seed=0):
    """A random-structure model of ``graph`` (SPEC 5 and 7), masks in the study's row layout."""
    gen = torch.Generator().manual_seed(seed)
    g = N_GATES[cell]
    layers = study_layers(graph)
    sizes = [len(layer) for layer in layers]
    state = {"embedding.weight": torch.randn(128, sizes[0], generator=gen)}

    def i2h(s, t):
        return torch.from_numpy(np.repeat(edge_matrix(graph, layers, s, t), g, axis=0))

    for t, h in enumerate(sizes):
        n_in = sizes[0] if t == 0 else sizes[t - 1]
        ih = torch.ones(g * h, n_in, dtype=torch.bool) if t == 0 else i2h(t - 1, t)
        hh = torch.ones(g * h, h, dtype=torch.bool)
        _put(state, f"recurrent.recurrent_layers.{t}", _layer(gen, cell, n_in, h, ih, hh))
    for k, (s, t) in enumerate(skip_pairs(graph, layers)):
        hh = torch.ones(g * sizes[t], sizes[t])
        tensors = _layer(gen, cell, sizes[s], sizes[t], i2h(s, t), hh)
        _put(state, f"recurrent.skip_layers.{k}", tensors)
    state["out.weight"] = torch.randn(2, sizes[-1], generator=gen)
    state["out.bias"] = torch.randn(2, generator=gen)
    return state


# ------------------------------------------------------------------------------ reference
def _step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of torch.nn.RNN/GRU/LSTM, gate by gate (rows are gate-major blocks of H)."""
    n = w_hh.shape[1]

    def gate(k, inp, w, b):
        return inp @ w[k * n : (k + 1) * n].t() + b[k * n : (k + 1) * n]

    if cell in ("rnn_tanh", "rnn_relu"):
        pre = gate(0, x, w_ih, b_ih) + gate(0, h, w_hh, b_hh)
        return (torch.tanh(pre) if cell == "rnn_tanh" else torch.relu(pre)), c
    if cell == "gru":  # gates r, z, n
        r = torch.sigmoid(gate(0, x, w_ih, b_ih) + gate(0, h, w_hh, b_hh))
        z = torch.sigmoid(gate(1, x, w_ih, b_ih) + gate(1, h, w_hh, b_hh))
        cand = torch.tanh(gate(2, x, w_ih, b_ih) + r * gate(2, h, w_hh, b_hh))
        return (1 - z) * cand + z * h, c
    # lstm: gates i, f, g, o
    i, f, gg, o = (gate(k, x, w_ih, b_ih) + gate(k, h, w_hh, b_hh) for k in range(4))
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    return torch.sigmoid(o) * torch.tanh(c), c


def _run_layer(cell, state, prefix, xs):
    """One saved recurrent layer over the list of per-step inputs ``xs`` (each (B, I))."""
    p = {name: state[f"{prefix}.{name}"].double() for name in TENSORS}
    w_ih = p["weight_ih"] * p["mask_i2h"]
    w_hh = p["weight_hh"] * p["mask_h2h"]
    n = w_hh.shape[1]
    h = xs[0].new_zeros(xs[0].shape[0], n)
    c = h.clone()
    outs = []
    for x in xs:
        h, c = _step(cell, x, h, c, w_ih, w_hh, p["bias_ih"], p["bias_hh"])
        outs.append(h)
    return outs


def reference_logits(state, cell, tokens, graph=None):
    """The study's forward pass, in float64: embedding, main layers (+ skip layers summed into
    their target's output), then the output layer at the LAST padded step. ``tokens`` (B, T)."""
    emb = state["embedding.weight"].double()
    xs = [emb[tokens[:, t]] for t in range(tokens.shape[1])]
    n_layers = 1 + max(
        int(k.split(".")[2]) for k in state if k.startswith("recurrent.recurrent_layers.")
    )
    pairs = skip_pairs(graph, study_layers(graph)) if graph is not None else []
    outputs = []
    for t in range(n_layers):
        src = xs if t == 0 else outputs[t - 1]
        total = _run_layer(cell, state, f"recurrent.recurrent_layers.{t}", src)
        for k, (s, dest) in enumerate(pairs):
            if dest == t:
                skip = _run_layer(cell, state, f"recurrent.skip_layers.{k}", outputs[s])
                total = [a + b for a, b in zip(total, skip, strict=True)]
        outputs.append(total)
    last = outputs[-1][-1]  # (B, |last layer|) at the last padded step
    return last @ state["out.weight"].double().t() + state["out.bias"].double()
