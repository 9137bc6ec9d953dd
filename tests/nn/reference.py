"""Slow reference implementations written straight from SPEC section 5 (kept for the tests).

Every sub-layer is its own module and every time step its own Python iteration, with the
edge mask multiplied into the weights at every step, as the study's code did.
"""

from __future__ import annotations

import numpy as np
import torch

from sparsernn.nn.cells import GATES, cell_step, zero_state


def reference_layer(mode, x, w_ih, w_hh, b_ih, b_hh, ih_mask=None):
    """One recurrent layer over x (T, B, I), mask multiplied at every step."""
    state = zero_state(mode, x.shape[1], w_hh.shape[1], x)
    outs = []
    for t in range(x.shape[0]):
        w = w_ih * ih_mask if ih_mask is not None else w_ih
        state = cell_step(mode, x[t], state, w, w_hh, b_ih, b_hh)
        outs.append(state[0] if mode == "lstm" else state)
    return torch.stack(outs)


def reference_structured(mode, x, dag, weights, gate_layout="blocked"):
    """SPEC section 5 literally: layer by layer, main layer plus each skip layer, summed.

    ``weights[(s, l)] = (w_ih, w_hh, b_ih, b_hh)`` per sub-layer (``(-1, 0)`` reads the input).
    ``gate_layout="interleaved"`` builds the i2h masks as the study's code did: each edge row
    repeated G times in a row (``np.repeat(edges, G, axis=0)``) instead of once per gate block.
    """
    g = GATES[mode]
    conns = {
        key: (np.repeat(m, g, axis=0) if gate_layout == "interleaved" else np.tile(m, (g, 1)))
        for key, m in dag.connections.items()
    }
    outputs = [reference_layer(mode, x, *weights[(-1, 0)])]
    for l in range(1, dag.n_layers):
        mask = torch.tensor(conns[(l - 1, l)]).float()
        total = reference_layer(mode, outputs[l - 1], *weights[(l - 1, l)], ih_mask=mask)
        for s in range(l - 1):
            if (s, l) in conns:
                skip_mask = torch.tensor(conns[(s, l)]).float()
                total = total + reference_layer(
                    mode, outputs[s], *weights[(s, l)], ih_mask=skip_mask
                )
        outputs.append(total)
    return outputs[-1]
