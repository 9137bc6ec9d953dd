"""Import networks saved by the study's original code (SPEC section 7).

Base / pruning models name the recurrent tensors
``recurrent.recurrent_layers.{k}.weight_ih|weight_hh|bias_ih|bias_hh`` with two mask buffers
``mask_i2h`` / ``mask_h2h`` beside them, and otherwise match ours (``embedding.weight``,
``out.weight``, ``out.bias``). Since the study's gates follow PyTorch's order, the weights map
one to one onto :class:`~sparsernn.models.SequenceClassifier` and the masks onto its
``weight_ih_l{k}_mask`` / ``weight_hh_l{k}_mask`` buffers (:func:`load_study_checkpoint`).

Random-structure models add ``recurrent.skip_layers.{k}.*`` and masks in the study's own row
layout; :func:`load_study_structure_checkpoint` loads them, with the graph they were built
from, into a :class:`~sparsernn.nn.StructuredRNN` that computes the same function.

Files are read with ``torch.load(weights_only=True)``: tensors only, never arbitrary objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from sparsernn.errors import DataError
from sparsernn.models import ModelConfig, SequenceClassifier
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import StructuredRNN

__all__ = ["load_study_checkpoint", "load_study_structure_checkpoint", "convert_study_state_dict"]

_STUDY_KEY = re.compile(
    r"recurrent\.recurrent_layers\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh|mask_i2h|mask_h2h)$"
)
_MASK_OF = {"mask_i2h": "weight_ih", "mask_h2h": "weight_hh"}
_LAYER_TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "mask_i2h", "mask_h2h")


def convert_study_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a study state dict's keys to ours.

    ``recurrent.recurrent_layers.{k}.weight_ih`` becomes ``recurrent.weight_ih_l{k}`` (and so
    on), ``.mask_i2h`` / ``.mask_h2h`` become ``recurrent.weight_ih_l{k}_mask`` /
    ``recurrent.weight_hh_l{k}_mask``; values are not changed (see :func:`_as_mask`).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _STUDY_KEY.match(key)
        if m is None:
            out[key] = value
        elif m.group(2) in _MASK_OF:
            out[f"recurrent.{_MASK_OF[m.group(2)]}_l{m.group(1)}_mask"] = value
        else:
            out[f"recurrent.{m.group(2)}_l{m.group(1)}"] = value
    return out


def _read_state(source, where: str) -> Mapping[str, torch.Tensor]:
    """A state dict from a path (read with ``weights_only=True``) or a mapping."""
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise DataError(f"{where}: no such checkpoint file; check the path")
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(
                f"{where}: not a PyTorch checkpoint (state dict) file "
                f"({exc.__class__.__name__}); pass the .pt file the study saved"
            ) from None
        if isinstance(source, dict) and source.get("format") == "sparsernn-checkpoint-1":
            raise DataError(
                f"{where}: a sparsernn checkpoint, not a study one; load it with "
                "sparsernn.train.load_checkpoint (CLI: drop --study-format)"
            )
        if isinstance(source, dict) and isinstance(source.get("state_dict"), Mapping):
            source = source["state_dict"]
    if not isinstance(source, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in source.items()
    ):
        raise DataError(
            f"{where}: not a PyTorch checkpoint (state dict) file: it holds a "
            f"{type(source).__name__}, not a mapping of names to tensors"
        )
    return source


def _where(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "state dict"


def _as_mask(mask: torch.Tensor, shape, key: str, where: str) -> torch.Tensor:
    """A saved mask (bool, or 0/1 numbers) as a bool tensor of ``shape``; else a DataError."""
    if tuple(mask.shape) != tuple(shape):
        raise DataError(
            f"{where}: {key} has shape {tuple(mask.shape)} but its weight has {tuple(shape)}; "
            "a mask must have its weight's shape (is the file damaged?)"
        )
    if mask.dtype != torch.bool:
        ok = torch.isin(mask.to(torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
        if not bool(ok.all()):
            bad = mask.flatten()[~ok.flatten()][0].item()
            raise DataError(
                f"{where}: {key} holds {bad!r}; a mask must be bool or 0/1 "
                "(fix or drop the mask buffer)"
            )
    return mask.to(torch.bool)


def _base_config(state: Mapping[str, torch.Tensor], where: str, cell: str) -> ModelConfig:
    """The :class:`ModelConfig` of a renamed base / pruning state dict, from its shapes."""
    try:
        vocab, emb = state["embedding.weight"].shape
        n_layers = 1 + max(
            int(k.split("_l")[-1]) for k in state if re.fullmatch(r"recurrent\.weight_hh_l\d+", k)
        )
        hidden = state["recurrent.weight_hh_l0"].shape[1]
        n_classes = state["out.weight"].shape[0]
    except (KeyError, ValueError):
        raise DataError(
            f"{where}: missing study keys (need embedding.weight, "
            "recurrent.recurrent_layers.{k}.weight_ih/..., out.weight, out.bias)"
        ) from None
    # fields in order: cell, vocab_size, embedding_dim, hidden_size, num_layers, n_classes
    return ModelConfig(cell, vocab, emb, hidden, n_layers, n_classes)


def load_study_checkpoint(
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor], cell: str
) -> SequenceClassifier:
    """Load a study base / pruning checkpoint (file or state dict) as a
    :class:`SequenceClassifier`.

    Sizes (vocabulary, embedding, hidden, layer count) are read from the tensors' shapes. The
    mask buffers ``mask_i2h`` / ``mask_h2h`` (bool or float 0/1; optional) become the model's
    masks, and the stored weights are zeroed where masked, so the forward pass is the study's
    ``weight * mask`` and a pruned model keeps its zeros when trained further.

    Raises
    ------
    DataError
        Not a state dict, keys or shapes that do not fit ``cell``, or a mask that is not 0/1.
    """
    where = _where(path_or_state_dict)
    gates = cell_spec(cell).gates
    state = convert_study_state_dict(_read_state(path_or_state_dict, where))
    config = _base_config(state, where, cell)
    hidden = config.hidden_size
    if state["recurrent.weight_hh_l0"].shape[0] != gates * hidden:
        raise DataError(
            f"{where}: weight_hh has {state['recurrent.weight_hh_l0'].shape[0]} rows, "
            f"which does not fit cell {cell!r} (expected {gates * hidden}); check --cell"
        )
    for k in range(config.num_layers):
        for kind, study in (("ih", "i2h"), ("hh", "h2h")):
            key, weight = f"recurrent.weight_{kind}_l{k}_mask", f"recurrent.weight_{kind}_l{k}"
            if key in state and weight in state:
                study_key = f"recurrent.recurrent_layers.{k}.mask_{study}"
                state[key] = _as_mask(state[key], state[weight].shape, study_key, where)
    model = SequenceClassifier(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1].strip()
        raise DataError(f"{where}: state dict does not fit the study's model ({reason})") from None
    missing = [k for k in missing if not k.endswith("_mask")]
    if missing or unexpected:
        raise DataError(f"{where}: state dict does not fit (missing {missing}, extra {unexpected})")
    recurrent = model.recurrent
    assert isinstance(recurrent, MaskedRNN)  # a config without a graph builds one
    recurrent.apply_masks_()
    return model


def _skip_layout(dag) -> list[tuple[int, int]]:
    """``(s, t)`` of skip layer ``k`` as the study numbered them: for target ``t = 2..L-1``,
    for source ``s = 0..t-2``, one skip layer if any edge joins layers ``s`` and ``t``."""
    conns = dag.connections
    return [(s, t) for t in range(2, dag.n_layers) for s in range(t - 1) if (s, t) in conns]


_HINT = "is this the right graph?"


def load_study_structure_checkpoint(
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor], graph, cell: str
) -> SequenceClassifier:
    """Load a study random-structure network (SPEC 5 and 7) built from ``graph``.

    Parameters
    ----------
    path_or_state_dict : a ``.pt`` file the study saved (read with ``weights_only=True``) or
        its state dict: ``embedding.weight``, ``recurrent.recurrent_layers.{l}.*`` for every
        DAG layer, ``recurrent.skip_layers.{k}.*`` for every skip connection (target layer
        ascending, then source), ``out.weight``, ``out.bias``; each layer with
        ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, ``mask_i2h``, ``mask_h2h``.
    graph : the undirected ``networkx.Graph`` the network was built from (or anything
        :class:`~sparsernn.nn.StructuredRNN` accepts); it fixes the layering, which the
        tensors' shapes are checked against.
    cell : ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"``.

    Returns
    -------
    SequenceClassifier
        Its ``recurrent`` is a :class:`~sparsernn.nn.StructuredRNN` with the saved weights AND
        the saved masks, used as they are (not re-derived from the graph): the study's GRU/LSTM
        masks repeat each edge row ``G`` times in a row (``gate_layout="interleaved"``), and a
        file with other masks keeps them. The forward pass equals the study's.

    Raises
    ------
    DataError
        Not a state dict, missing or extra layers, shapes that do not fit the graph's layering
        or the cell, or masks that are not 0/1.
    """
    from sparsernn.graphs import LayeredDAG, to_layered_dag

    where = _where(path_or_state_dict)
    cell_spec(cell)
    state = _read_state(path_or_state_dict, where)
    dag = graph if isinstance(graph, LayeredDAG) else to_layered_dag(graph)
    vocab, emb, n_classes = _outer_sizes(state, where, dag.layer_sizes)
    weights, masks = _read_sublayers(state, where, dag, emb, cell)
    config = ModelConfig(
        cell=cell,
        vocab_size=vocab,
        embedding_dim=emb,
        n_classes=n_classes,
        graph_edges=_ascending_edges(dag),
        n_nodes=dag.n_nodes,
        gate_layout="interleaved",
    )
    model = SequenceClassifier(config)
    with torch.no_grad():
        for key in ("embedding.weight", "out.weight", "out.bias"):
            model.get_parameter(key).copy_(state[key])
    recurrent = model.recurrent
    assert isinstance(recurrent, StructuredRNN)  # a graph-wired config builds one
    recurrent.load_sublayer_weights(weights, masks)
    return model


def _read_sublayers(state, where: str, dag, emb: int, cell: str) -> tuple[dict, dict]:
    """Per sub-layer ``(s, l)``: its ``(w_ih, w_hh, b_ih, b_hh)`` and bool ``(ih, hh)`` masks."""
    prefixes = {(l - 1, l): f"recurrent.recurrent_layers.{l}" for l in range(dag.n_layers)}
    skips = _skip_layout(dag)
    prefixes.update({pair: f"recurrent.skip_layers.{k}" for k, pair in enumerate(skips)})
    _check_layer_counts(state, where, dag.n_layers, len(skips))
    weights, masks = {}, {}
    for (s, l), prefix in prefixes.items():
        n_in = emb if s < 0 else dag.layer_sizes[s]
        t = _sublayer_tensors(state, where, prefix, (s, l), n_in, dag.layer_sizes[l])
        _check_rows(t, where, prefix, cell_spec(cell).gates * dag.layer_sizes[l], cell)
        masks[(s, l)] = tuple(
            _as_mask(t[m], t[w].shape, f"{prefix}.{m}", where)
            for m, w in (("mask_i2h", "weight_ih"), ("mask_h2h", "weight_hh"))
        )
        weights[(s, l)] = tuple(t[n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return weights, masks


def _outer_sizes(state, where: str, sizes) -> tuple[int, int, int]:
    """``(vocab, embedding, classes)`` of a structure file, checked against the layering."""
    for key in ("embedding.weight", "out.weight", "out.bias"):
        if key not in state:
            raise DataError(f"{where}: missing {key}; not a study random-structure network")
    vocab, emb = state["embedding.weight"].shape
    if emb != sizes[0]:
        raise DataError(
            f"{where}: embedding.weight has {emb} columns but the graph's layer 0 has "
            f"{sizes[0]} nodes; {_HINT}"
        )
    n_classes, top = state["out.weight"].shape
    if top != sizes[-1]:
        raise DataError(
            f"{where}: out.weight has {top} columns but the graph's last layer has "
            f"{sizes[-1]} nodes; {_HINT}"
        )
    return vocab, emb, n_classes


def _sublayer_tensors(state, where: str, prefix: str, key, n_in: int, n_out: int) -> dict:
    """The six tensors of sub-layer ``key = (s, l)`` stored under ``prefix``, columns checked."""
    s, l = key
    kind = "main layer" if prefix.startswith("recurrent.recurrent") else "skip layer"
    name = f"{kind} {prefix.rsplit('.', 1)[1]}"
    t = {}
    for tensor in _LAYER_TENSORS:
        if f"{prefix}.{tensor}" not in state:
            raise DataError(f"{where}: missing {prefix}.{tensor}; not a study network file")
        t[tensor] = state[f"{prefix}.{tensor}"]
    if t["weight_hh"].ndim != 2 or t["weight_hh"].shape[1] != n_out:
        raise DataError(
            f"{where}: {name} has hidden size {_cols(t['weight_hh'])} but the graph's "
            f"layer {l} has {n_out} nodes; {_HINT}"
        )
    if t["weight_ih"].ndim != 2 or t["weight_ih"].shape[1] != n_in:
        src = "the embedding has" if s < 0 else f"the graph's layer {s} has"
        raise DataError(
            f"{where}: {name} has input size {_cols(t['weight_ih'])} but {src} "
            f"{n_in} {'columns' if s < 0 else 'nodes'}; {_HINT}"
        )
    return t


def _check_rows(t: dict, where: str, prefix: str, rows: int, cell: str) -> None:
    """Every weight and bias of a sub-layer has ``gates * units`` rows."""
    for tensor in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if t[tensor].shape[0] != rows:
            raise DataError(
                f"{where}: {prefix}.{tensor} has {t[tensor].shape[0]} rows, but cell "
                f"{cell!r} with {rows // cell_spec(cell).gates} units needs {rows}; check the cell"
            )


def _ascending_edges(dag) -> tuple[tuple[int, int], ...]:
    """The DAG's edges, sorted; each must point to the larger node, as the study's did."""
    edges = [(int(u), int(v)) for u, v in dag.dag.edges()]
    if any(u > v for u, v in edges):
        raise DataError(
            "the study's graphs are undirected (edges point to the larger node); pass the "
            "undirected graph, not a DiGraph with edges to smaller nodes"
        )
    return tuple(sorted(edges))


def _cols(t: torch.Tensor):
    return t.shape[1] if t.ndim == 2 else tuple(t.shape)


def _check_layer_counts(state, where: str, n_main: int, n_skip: int) -> None:
    found: dict[str, set[int]] = {"recurrent_layers": set(), "skip_layers": set()}
    for key in state:
        m = re.match(r"recurrent\.(recurrent_layers|skip_layers)\.(\d+)\.", key)
        if m:
            found[m.group(1)].add(int(m.group(2)))
        elif key not in ("embedding.weight", "out.weight", "out.bias"):
            raise DataError(f"{where}: unexpected key {key!r}; not a study random-structure file")
    for kind, want in (("recurrent_layers", n_main), ("skip_layers", n_skip)):
        if found[kind] != set(range(want)):
            what = "main layers" if kind == "recurrent_layers" else "skip layers"
            raise DataError(
                f"{where}: the file has {len(found[kind])} {what} but the graph's layering "
                f"needs {want}; {_HINT}"
            )
