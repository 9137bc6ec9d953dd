"""The compiled layer schedule (sparsernn.nn.native): the kernel against the SPEC reference,
its build cache and load checks (sparsernn.nn._build), and the fallbacks when it cannot be
built, each with a one-line reason. Tests of the compiled code are marked ``needs_native``
(tests/nn/conftest.py): skipped without a compiler or with ``SPARSERNN_NATIVE=0``."""

import ctypes
import io
import os
import stat
import subprocess
import sys
import warnings

import pytest
import torch

from sparsernn.errors import ConfigError
from sparsernn.graphs import make_graph
from sparsernn.nn import MODES, native, sparse_kernel
from sparsernn.nn._build import assemble, exported_layout, layout_problem
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.reference import reference_layer, reference_structured
from sparsernn.nn.structured import StructuredRNN


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """An empty build cache and a forgotten library; the real one is restored afterwards."""
    monkeypatch.setenv("SPARSERNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARSERNN_NATIVE", raising=False)  # these tests set up their own
    monkeypatch.setattr(native, "_warned", False)
    native._library.cache_clear()
    yield tmp_path
    native._library.cache_clear()


def _fake_compiler(path, message):
    """An executable that prints ``message`` on stderr and fails, as a broken compiler would."""
    path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _layer(mode, width_blocks, in_size, dtype, seed):
    """Random weights of a block-diagonal layer, its masks and the wiring the kernel takes."""
    gen = torch.Generator().manual_seed(seed)
    g = cell_spec(mode).gates
    offsets = [sum(width_blocks[:j]) for j in range(len(width_blocks))]
    width = sum(width_blocks)
    hh_mask = torch.zeros(g * width, width, dtype=torch.bool)
    for off, size in zip(offsets, width_blocks, strict=True):
        for gate in range(g):
            hh_mask[gate * width + off : gate * width + off + size, off : off + size] = True
    hh_mask &= torch.rand(hh_mask.shape, generator=gen) < 0.8  # pruned inside the blocks too
    ih_mask = torch.rand(g * width, in_size, generator=gen) < 0.4
    ih_mask[:, 0] = False  # an input column nothing reads: its gradient must be exactly 0
    weights = [torch.randn(shape, generator=gen, dtype=dtype) * 0.6 for shape in
               ((g * width, in_size), (g * width, width), (g * width,), (g * width,))]  # fmt: skip
    wiring = native.Wiring.of(list(zip(offsets, width_blocks, strict=True)), ih_mask)
    return weights, ih_mask, hh_mask, wiring


def _one_layer(mode, wiring, x, w_ih, w_hh, b_ih=None, b_hh=None):
    """States (T, W, B) of one wide layer through the public layer schedule: the layer reads
    the input and each of its blocks is one layer of the network, so the layers' outputs side
    by side are its states."""
    n_blocks = len(wiring.sizes)
    schedule = native.Schedule(sizes=tuple(wiring.sizes.tolist()), sources=(-1,),
                               dests=(tuple(range(n_blocks)),), wirings=(wiring,))  # fmt: skip
    outs = native.layer_schedule(cell_spec(mode), schedule, x, [w_ih, w_hh, b_ih, b_hh])
    return torch.cat(outs, dim=1)


@pytest.mark.needs_native
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_wide_layer_equals_the_reference_layer(mode, dtype):
    """Outputs and every gradient (input, weights, biases) against the SPEC loop, batch 37:
    float64 to 1e-10; float32 relative to the values' size (ReLU's grow large; over 30 seeds
    the worst |difference| / (1 + |value|) was 8e-6), rtol = atol = 5e-5."""
    tol = {"rtol": 0, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 5e-5, "atol": 5e-5}
    (w_ih, w_hh, b_ih, b_hh), ih_mask, hh_mask, wiring = _layer(mode, [3, 1, 6, 2], 5, dtype, 0)
    x = torch.randn(8, 37, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    leaves = [t.clone().requires_grad_(True) for t in (x, w_ih, w_hh, b_ih, b_hh)]
    ref = reference_layer(mode, leaves[0], *leaves[1:], ih_mask=ih_mask, hh_mask=hh_mask)
    probe = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    ref_grads = torch.autograd.grad((ref * probe).sum(), leaves)

    mine = [t.clone().requires_grad_(True) for t in (x, w_ih, w_hh, b_ih, b_hh)]
    x_fm, w_i, w_h, b_i, b_h = mine
    out = _one_layer(
        mode, wiring, x_fm.transpose(1, 2), w_i * ih_mask, w_h * hh_mask, b_i, b_h
    ).transpose(1, 2)
    grads = torch.autograd.grad((out * probe).sum(), mine)
    assert torch.allclose(out, ref, **tol)
    for name, a, b in zip(("x", "w_ih", "w_hh", "b_ih", "b_hh"), grads, ref_grads, strict=True):
        assert torch.allclose(a, b, **tol), name
    assert torch.all(grads[0][..., 0] == 0)  # column 0 is read by nothing


@pytest.mark.needs_native
def test_biases_may_be_absent():
    (w_ih, w_hh, _, _), ih_mask, hh_mask, wiring = _layer("gru", [4, 2], 3, torch.float64, 2)
    x = torch.randn(5, 9, 3, dtype=torch.float64)
    ref = reference_layer("gru", x, w_ih, w_hh, ih_mask=ih_mask, hh_mask=hh_mask)
    out = _one_layer("gru", wiring, x.transpose(1, 2).contiguous(), w_ih * ih_mask, w_hh * hh_mask)
    assert torch.allclose(out.transpose(1, 2), ref, atol=1e-12)


@pytest.mark.needs_native
def test_same_input_gives_bitwise_the_same_numbers():
    net = StructuredRNN(make_graph("ba", 30, seed=3), "lstm", kernel="native")
    x = torch.randn(9, 40, net.input_size)
    runs = []
    for _ in range(2):
        net.zero_grad()
        out, _ = net(x)
        out.square().sum().backward()
        runs.append([out.detach().clone(), *(p.grad.clone() for p in net.parameters())])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.needs_native
def test_build_is_cached_by_source_and_machine(fresh_native):
    first = native.build()
    stamp = first.stat().st_mtime_ns
    assert first.parent == fresh_native / "cache" and first.suffix == ".so"
    assert native.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert native.available()


def test_a_failing_compiler_means_the_pytorch_path_with_a_one_line_warning(
    fresh_native, monkeypatch
):
    gcc_says = (  # as g++ prints it: the error, then the source line, a caret, a summary
        "In file included from recurrence.cpp:1:\n"
        "recurrence.cpp:3:10: fatal error: no headers\n"
        "    3 | #include <cstdint>\n"
        "      |          ^~~~~~~~~\n"
        "compilation terminated."
    )
    monkeypatch.setenv("CXX", _fake_compiler(fresh_native / "cxx", gcc_says))
    monkeypatch.setenv("PATH", str(fresh_native))  # c++/g++/clang++ are not found either
    with pytest.raises(
        native.NativeUnavailable, match="^cxx failed: recurrence.cpp:3:10: fatal error: no headers$"
    ):
        native.build()
    assert not list((fresh_native / "cache").glob("*"))  # no half-written library left
    graph = make_graph("ws", 20, seed=0)
    torch.manual_seed(0)
    net = StructuredRNN(graph, "gru").double()
    x = torch.randn(4, 3, net.input_size, dtype=torch.double)
    with pytest.warns(RuntimeWarning, match="compiled recurrence unavailable") as caught:
        out, _ = net(x)
    (message,) = [str(w.message) for w in caught]
    assert "\n" not in message and "no headers" in message and "PyTorch path" in message
    weights = {k: v for k, v in net.sublayer_weights().items()}
    assert torch.allclose(out, reference_structured("gru", x, net.dag, weights), atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not at every forward
        net(x)
    native_net = StructuredRNN(graph, "gru", kernel="native")
    with pytest.raises(ConfigError, match="kernel='native' cannot run: .*no headers.*'torch'"):
        native_net(x.float())


def test_no_compiler_at_all(fresh_native, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(fresh_native))
    with pytest.raises(native.NativeUnavailable, match="no C\\+\\+ compiler found"):
        native.build()
    assert native.unavailable_reason() == "no C++ compiler found (set $CXX or install g++)"
    assert native.main() == 0  # `make install` goes on: the notice, not a failure


def test_unwritable_cache_names_the_fix(fresh_native, monkeypatch):
    blocker = fresh_native / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("SPARSERNN_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(native.NativeUnavailable, match="cannot write the build cache .*"
                       "SPARSERNN_CACHE_DIR"):  # fmt: skip
        native.build()
    assert native.main() == 0 and not native.available(warn=False)


def test_disabled_by_environment(fresh_native, monkeypatch):
    monkeypatch.setenv("SPARSERNN_NATIVE", "0")
    assert not native.available()
    net = StructuredRNN(make_graph("ws", 15, seed=0), "rnn_tanh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deliberate choice is not warned about
        assert not net.uses_native()


@pytest.mark.needs_native
def test_h2h_mask_across_sub_layers_falls_back_to_pytorch():
    """The compiled loop reads only the diagonal blocks: a mask set by hand across them sends
    the network to the PyTorch path ('auto') or is refused ('native'), never silently wrong."""
    graph = make_graph("ba", 25, seed=4)
    torch.manual_seed(0)
    net = StructuredRNN(graph, "rnn_tanh").double()
    assert net.uses_native(dtype=torch.float64)
    wide = next(w for w, (_, dests) in zip(net.wide, net.plan, strict=True) if len(dests) > 1)
    with torch.no_grad():
        mask = wide.weight_hh_l0_mask.clone()
        mask[0, -1] = True  # unit 0 reads a unit of another sub-layer
        wide.set_mask("weight_hh_l0", mask)
        wide.weight_hh_l0[0, -1] = 0.5
    assert not net.uses_native(dtype=torch.float64)
    twin = StructuredRNN(graph, "rnn_tanh", kernel="torch").double()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(5, 4, net.input_size, dtype=torch.double)
    assert torch.equal(net(x)[0], twin(x)[0])
    net.kernel = "native"
    with pytest.raises(ConfigError, match="reaches across sub-layers"):
        net(x)


@pytest.mark.needs_native
@pytest.mark.parametrize("prune_in_block", [False, True])
def test_weights_off_the_wiring_are_never_read(prune_in_block):
    """The compiled loop takes the stored weights as they are when the h2h mask keeps whole
    blocks, and masked copies when it does not (a pruned entry inside a block): either way
    values planted where the masks are False change nothing, and their gradient is zero."""
    graph = make_graph("ba", 20, seed=3)
    torch.manual_seed(1)
    net = StructuredRNN(graph, "lstm").double()
    if prune_in_block:
        key, (ih, hh) = next((k, m) for k, m in net.sublayer_masks().items() if m[1].all())
        hh = hh.clone()
        hh[0, 0] = False
        net.set_sublayer_masks({key: (None, hh)})
    twin = StructuredRNN(graph, "lstm", kernel="torch").double()
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        for wide in net.wide_layers:  # the masks zeroed these; plant values there
            for name in ("weight_ih_l0", "weight_hh_l0"):
                w, mask = getattr(wide, name), getattr(wide, f"{name}_mask")
                w[~mask] = 7.0
    assert net.uses_native(dtype=torch.float64)
    x = torch.randn(7, 5, net.input_size, dtype=torch.double)
    out, twin_out = net(x)[0], twin(x)[0]
    assert torch.allclose(out, twin_out, rtol=0, atol=1e-12)
    out.square().sum().backward()
    twin_out.square().sum().backward()
    for wide, other in zip(net.wide_layers, twin.wide_layers, strict=True):
        for name in ("weight_ih_l0", "weight_hh_l0"):
            grad, mask = getattr(wide, name).grad, getattr(wide, f"{name}_mask")
            assert not grad[~mask].any()
            assert torch.allclose(grad, getattr(other, name).grad, rtol=0, atol=1e-10)


def test_unknown_kernel_and_non_cpu_requests_are_refused():
    graph = make_graph("ws", 12, seed=0)
    with pytest.raises(ConfigError, match="unknown kernel 'fast'.*'auto', 'native', 'torch'"):
        StructuredRNN(graph, "gru", kernel="fast")
    net = StructuredRNN(graph, "gru", kernel="native")
    with pytest.raises(ConfigError, match="float32/float64, not cpu torch.bfloat16"):
        net.uses_native(dtype=torch.bfloat16)
    assert not StructuredRNN(graph, "gru").uses_native("meta")


def test_source_ships_with_the_package():
    assert native.SOURCE.is_file() and os.path.getsize(native.SOURCE) > 0


@pytest.mark.needs_native
def test_masks_changed_after_a_forward_are_followed():
    """The wiring is cached between forwards; pruning the masks afterwards must be seen."""
    graph = make_graph("ws", 24, seed=6)
    torch.manual_seed(0)
    net = StructuredRNN(graph, "gru").double()
    twin = StructuredRNN(graph, "gru", kernel="torch").double()
    x = torch.randn(6, 20, net.input_size, dtype=torch.double)
    net(x)  # builds and caches the wiring
    gen = torch.Generator().manual_seed(2)
    pruned = {
        key: (ih & (torch.rand(ih.shape, generator=gen) < 0.5), hh)
        for key, (ih, hh) in net.sublayer_masks().items()
    }
    net.set_sublayer_masks(pruned)
    twin.load_state_dict(net.state_dict())
    assert torch.allclose(net(x)[0], twin(x)[0], atol=1e-12)
    net.to(torch.float32)  # replaced parameters, the same masks: still right
    twin.to(torch.float32)
    assert torch.allclose(net(x.float())[0], twin(x.float())[0], atol=1e-5)


@pytest.mark.needs_native
def test_gradcheck_and_no_silent_double_backward():
    """First derivatives by finite differences (torch.autograd.gradcheck, float64) through the
    layer schedule; a second derivative is refused loudly rather than computed wrong."""
    (w_ih, w_hh, b_ih, b_hh), ih_mask, hh_mask, wiring = _layer("lstm", [2, 1], 3, torch.float64, 5)
    x = torch.randn(4, 3, 17, dtype=torch.float64)  # (T, I, B): batch 17 has a scalar tail
    inputs = [t.clone().requires_grad_(True) for t in (x, w_ih * ih_mask, w_hh * hh_mask)]

    def fn(x_, w_i, w_h):
        return _one_layer("lstm", wiring, x_, w_i * ih_mask, w_h * hh_mask, b_ih, b_hh)

    assert torch.autograd.gradcheck(fn, inputs)
    out = fn(*inputs)
    (g,) = torch.autograd.grad(out.sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(g.sum(), inputs[1])


@pytest.mark.needs_native
@pytest.mark.parametrize("mode", MODES)
def test_every_layer_output_takes_its_own_gradient_besides_the_later_layers(mode):
    """The compiled schedule adds each layer output's own gradient (here from h_n, every
    other layer's) to what the layers reading it send back; outputs the loss never uses
    count as zero. Against the PyTorch path in float64."""
    graph = make_graph("ba", 30, seed=2)
    torch.manual_seed(3)
    net = StructuredRNN(graph, mode).double()
    twin = StructuredRNN(graph, mode, kernel="torch").double()
    twin.load_state_dict(net.state_dict())
    assert net.uses_native(dtype=torch.float64) and net.n_layers > 3
    x = torch.randn(6, 5, net.input_size, dtype=torch.double)
    probes = [torch.randn(5, size, dtype=torch.double) for size in net.layer_sizes]
    grads = []
    for model in (net, twin):
        x_ = x.clone().requires_grad_(True)
        out, h_n = model(x_)
        pairs = list(zip(h_n, probes, strict=True))[::2]  # every other layer's h_n
        loss = out.square().sum() + sum((h * p).sum() for h, p in pairs)
        loss.backward()
        grads.append([x_.grad, *(p.grad for p in model.parameters())])
    for mine, theirs in zip(*grads, strict=True):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-10)


def test_schedule_refuses_an_order_that_reads_an_unfinished_layer():
    wiring = native.Wiring.of([(0, 2)], torch.ones(2, 2, dtype=torch.bool))
    ok = native.Schedule(sizes=(2, 2), sources=(-1, 0), dests=((0,), (1,)),
                         wirings=(wiring, wiring))  # fmt: skip
    assert ok.pointers()["block_ptr"] is not None
    with pytest.raises(ValueError, match="wide layer 0 .* comes before a sub-layer writing"):
        native.Schedule(sizes=(2, 2), sources=(0, -1), dests=((1,), (0,)),
                        wirings=(wiring, wiring))  # fmt: skip
    with pytest.raises(ValueError, match="wide layer 1 .*not after its source"):
        native.Schedule(sizes=(2, 2), sources=(-1, 1), dests=((0,), (1,)),
                        wirings=(wiring, wiring))  # fmt: skip
    with pytest.raises(ValueError, match=r"wide layer 1's blocks \[2\] are not .* sizes \[3\]"):
        native.Schedule(sizes=(2, 3), sources=(-1, 0), dests=((0,), (1,)),
                        wirings=(wiring, wiring))  # fmt: skip
    with pytest.raises(ValueError, match="one entry per wide layer"):
        native.Schedule(sizes=(2,), sources=(-1,), dests=((0,),), wirings=())
    w = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="3 weights for 2 wide layers"):
        native.layer_schedule(cell_spec("rnn_tanh"), ok, torch.zeros(1, 2, 1), [w, w, None])


@pytest.mark.needs_native
@pytest.mark.parametrize("kernel_call", ["network", "layer"])
def test_weights_changed_in_place_before_backward_are_an_error(kernel_call):
    """The compiled backward reads the weights again, so a weight changed in place between
    forward and backward must be refused (autograd's version check), not used."""
    graph = make_graph("ws", 16, seed=1)
    torch.manual_seed(0)
    net = StructuredRNN(graph, "gru").double()
    x = torch.randn(4, 3, net.input_size, dtype=torch.double)
    if kernel_call == "network":
        out = net(x)[0]
        weight = net.wide_layers[-1].weight_hh_l0
    else:
        (w_ih, w_hh, b_ih, b_hh), _, _, wiring = _layer("gru", [2, 3], 4, torch.float64, 0)
        weight = w_hh.requires_grad_(True)
        x = torch.randn(3, 4, 5, dtype=torch.double)
        out = _one_layer("gru", wiring, x, w_ih, weight, b_ih, b_hh)
    with torch.no_grad():
        weight.mul_(0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.needs_native
def test_a_module_pickled_before_the_schedule_cache_existed_still_runs():
    """Whole modules saved by an earlier version carry a wiring cache without the schedule;
    the cache is rebuilt, not trusted."""
    torch.manual_seed(0)
    net = StructuredRNN(make_graph("ws", 15, seed=0), "gru")
    x = torch.randn(3, 2, net.input_size)
    out = net(x)[0]
    del net._schedule  # what such a module lacks
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)  # our own object, written just above
    assert torch.equal(restored(x)[0], out)


# -- the verified cache: checksums, ownership, a library that fails its check ---------------------


@pytest.fixture(scope="module")
def good_library():
    """A sound build of the kernel from the user's own cache (built by `make install`)."""
    return native.build()


def _copying_compiler(folder, good, fail_after=None):
    """A "compiler" that copies ``good`` to its ``-o`` path (a real build takes minutes on a
    busy machine), logging each build; from build ``fail_after`` on it fails like g++."""
    log = folder / "builds.log"
    script = folder / "cxx"
    fail = "" if fail_after is None else (
        f'[ "$(wc -l < {log})" -ge {fail_after} ] && echo "cxx: error: out of disk" >&2 && exit 1\n'
    )
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "copycxx 1.0"; exit 0; fi\n'
        f"{fail}"
        'prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
        f'echo build >> {log}\ncp {good} "$out"\n'
    )
    script.chmod(0o755)
    log.write_text("")
    return str(script), log


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


LOAD = """
import torch
from sparsernn.graphs import make_graph
from sparsernn.nn import native
from sparsernn.nn.structured import StructuredRNN
print(native.unavailable_reason())
net = StructuredRNN(make_graph("ws", 12, seed=0), "gru", kernel="native").double()
x = torch.randn(5, 2, net.input_size, dtype=torch.double)
ref = StructuredRNN(make_graph("ws", 12, seed=0), "gru", kernel="torch").double()
ref.load_state_dict(net.state_dict())
print(torch.allclose(net(x)[0], ref(x)[0], atol=1e-10))
"""


@pytest.mark.needs_native
@pytest.mark.parametrize("damage", [_truncate, _flip_middle], ids=["truncated", "changed"])
def test_a_damaged_cached_library_is_rebuilt_before_any_process_loads_it(
    fresh_native, good_library, monkeypatch, damage
):
    cxx, log = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    library = native.build()
    damage(library)
    env = {**os.environ, "CXX": cxx, "SPARSERNN_CACHE_DIR": str(fresh_native / "cache")}
    # a fresh process, as a study's worker: loading half a library would kill it (SIGBUS)
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "True"]
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("sparsernn:")]
    assert line == (
        f"sparsernn: the cached kernel {library} does not match its checksum (truncated or "
        "changed since it was built); rebuilding it"
    )
    assert log.read_text().count("build") == 2
    assert native.verify(library) is None


@pytest.mark.needs_native
def test_a_library_that_fails_its_check_and_cannot_be_rebuilt_falls_back_with_one_line(
    fresh_native, good_library, monkeypatch, capsys
):
    cxx, _ = _copying_compiler(fresh_native, good_library, fail_after=1)
    monkeypatch.setenv("CXX", cxx)
    _truncate(native.build())
    with pytest.warns(RuntimeWarning) as caught:
        assert not native.available()
    (message,) = [str(w.message) for w in caught]
    assert message == native.fallback_line("cxx failed: cxx: error: out of disk")
    assert native.main() == 0 and "not available (cxx failed" in capsys.readouterr().out


@pytest.mark.needs_native
def test_a_library_without_its_checksum_is_not_loaded(fresh_native, good_library, monkeypatch):
    cxx, log = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    library = native.build()
    (library.parent / (library.name + ".sha256")).unlink()  # e.g. a build killed before it
    assert native.verify(library).startswith("has no checksum")
    assert native.build() == library and log.read_text().count("build") == 2


@pytest.mark.needs_native
@pytest.mark.parametrize("what", ["folder", "library", "checksum"])
def test_a_cache_others_may_write_is_refused(fresh_native, good_library, monkeypatch, what):
    cxx, log = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    library = native.build()
    path = {"folder": library.parent, "library": library,
            "checksum": library.parent / (library.name + ".sha256")}[what]  # fmt: skip
    path.chmod(0o777 if what == "folder" else 0o666)
    with pytest.raises(native.NativeUnavailable) as info:
        native.build()
    assert str(info.value) == (
        f"the kernel cache {'checksum' if what == 'checksum' else what.replace('library', 'file')}"
        f" {path} is writable by others (mode {'0777' if what == 'folder' else '0666'}), so a "
        "library there could be swapped; chmod go-w it, or set $SPARSERNN_CACHE_DIR to a "
        "folder of your own"
    )
    assert native.unavailable_reason() == str(info.value)
    assert log.read_text().count("build") == 1  # nothing was built into it either


@pytest.mark.needs_native
def test_a_cache_another_user_owns_is_refused(fresh_native, good_library, monkeypatch):
    cxx, _ = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    native.build()
    owner = (fresh_native / "cache").stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(native.NativeUnavailable, match=f"another user \\(uid {owner}\\)"):
        native.build()
    assert native.cached() is None


@pytest.mark.needs_native
def test_temporaries_of_killed_builds_are_removed(fresh_native, good_library, monkeypatch):
    cxx, _ = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    library = native.build()
    stale = library.parent / f".{library.name}.abcd1234.tmp"
    stale.write_bytes(b"half a library")
    os.utime(stale, (1, 1))
    fresh = library.parent / f".{library.name}.efgh5678.tmp"  # another process building now
    fresh.write_bytes(b"")
    native.build()
    assert not stale.exists() and fresh.exists()


# -- the load checks: one ABI version, the shared structs field by field ---------------------------

#: Every struct a compiled library shares with Python, and two of its fields of one type and size
#: to swap: (the library's ctypes module, its export prefix, the C struct, the fields).
SHARED_STRUCTS = [
    pytest.param(native, "srnn", "Layer", ("w_ih", "b_ih"), id="Layer"),
    pytest.param(native, "srnn", "Net", ("outs", "g_outs"), id="Net"),
    pytest.param(sparse_kernel, "spl", "SpLayer", ("ih_val", "hh_val"), id="SpLayer"),
    pytest.param(sparse_kernel, "spl", "Pattern", ("by_rows", "by_cols"), id="Pattern"),
    pytest.param(sparse_kernel, "spl", "Sliced", ("order", "start"), id="Sliced"),
]


def _loaded(module):
    """The module's library as it loads it (built, verified, checked)."""
    lib = module._library()
    if isinstance(lib, str):
        pytest.skip(f"compiled library unavailable: {lib}")
    return lib


def _swapped(struct, first, second):
    """A ctypes struct like ``struct`` with fields ``first`` and ``second`` swapped."""
    fields = list(struct._fields_)
    names = [name for name, *_ in fields]
    i, j = names.index(first), names.index(second)
    fields[i], fields[j] = fields[j], fields[i]
    return type(f"Swapped{struct.__name__}", (ctypes.Structure,), {"_fields_": fields})


@pytest.mark.needs_native
@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize(("module", "prefix", "label", "pair"), SHARED_STRUCTS)
def test_a_struct_with_two_fields_swapped_is_refused(module, prefix, label, pair):
    """Each library exports every shared struct's field offsets; its ctypes declaration passes,
    and the same declaration with two fields of one size swapped (which a size check passes)
    is refused, naming the field."""
    exported = exported_layout(_loaded(module), prefix, label)
    struct = module.STRUCTS[label]
    assert layout_problem(label, exported, struct) is None
    assert sorted(exported[0]) == sorted(name for name, *_ in struct._fields_)
    swapped = _swapped(struct, *pair)
    assert ctypes.sizeof(swapped) == exported[1] == ctypes.sizeof(struct)
    first, second = (getattr(struct, name).offset for name in pair)
    assert first != second
    assert layout_problem(label, exported, swapped) == (
        f"the library's {label} struct differs from sparsernn's (field {pair[0]} at offset "
        f"{first}, expected {second})"
    )


@pytest.mark.needs_native
def test_a_missing_or_extra_field_or_another_size_is_refused():
    exported = exported_layout(_loaded(native), "srnn", "Net")
    fields = list(native.NetArgs._fields_)
    fewer = type("Fewer", (ctypes.Structure,), {"_fields_": fields[:-1]})
    more = type("More", (ctypes.Structure,), {"_fields_": [*fields, ("spare", ctypes.c_int64)]})
    assert layout_problem("Net", exported, fewer) == (
        f"the library's Net struct differs from sparsernn's (field d_x at offset "
        f"{native.NetArgs.d_x.offset}, which sparsernn lacks)"
    )
    assert layout_problem("Net", exported, more) == (
        "the library's Net struct differs from sparsernn's (no field spare, expected at offset "
        f"{ctypes.sizeof(native.NetArgs)})"
    )
    size = ctypes.sizeof(native.NetArgs)
    assert layout_problem("Net", (exported[0], size + 8), native.NetArgs) == (
        f"the library's Net struct differs from sparsernn's (size {size + 8}, expected {size})"
    )


@pytest.mark.needs_native
def test_a_library_whose_struct_differs_is_not_used_and_the_pytorch_path_runs(monkeypatch):
    _loaded(native)
    swapped = _swapped(native.LayerArgs, "w_ih", "b_ih")
    monkeypatch.setitem(native.STRUCTS, "Layer", swapped)
    monkeypatch.setattr(native, "_warned", False)
    native._library.cache_clear()
    try:
        reason = native.unavailable_reason()
        assert reason == (
            "the library's Layer struct differs from sparsernn's (field w_ih at offset "
            f"{native.LayerArgs.w_ih.offset}, expected {native.LayerArgs.b_ih.offset})"
        )
        torch.manual_seed(0)
        net = StructuredRNN(make_graph("ws", 15, seed=0), "gru").double()
        x = torch.randn(4, 3, net.input_size, dtype=torch.double)
        with pytest.warns(RuntimeWarning, match="compiled recurrence unavailable") as caught:
            out, _ = net(x)
        (message,) = [str(w.message) for w in caught]
        assert message == native.fallback_line(reason)
        ref = reference_structured("gru", x, net.dag, net.sublayer_weights())
        assert torch.allclose(out, ref, atol=1e-10)
    finally:
        native._library.cache_clear()


@pytest.mark.needs_native("sparse")
def test_a_sparse_library_whose_struct_differs_runs_the_dense_path(monkeypatch):
    _loaded(sparse_kernel)
    swapped = _swapped(sparse_kernel.PatternArgs, "by_rows", "by_cols")
    monkeypatch.setitem(sparse_kernel.STRUCTS, "Pattern", swapped)
    sparse_kernel._library.cache_clear()
    try:
        assert sparse_kernel.unavailable_reason() == (
            "the library's Pattern struct differs from sparsernn's (field by_rows at offset "
            f"{sparse_kernel.PatternArgs.by_rows.offset}, expected "
            f"{sparse_kernel.PatternArgs.by_cols.offset})"
        )
        with pytest.warns(RuntimeWarning, match="compiled sparse layer unavailable"):
            assert not sparse_kernel.available()
    finally:
        sparse_kernel._library.cache_clear()


@pytest.mark.needs_native
def test_a_library_of_another_abi_version_is_refused_as_stale(
    fresh_native, good_library, monkeypatch
):
    """The version is typed once (native.ABI_VERSION) and reaches the C++ as -DSRNN_ABI; a
    library reporting another one (here: a sound build copied under the next version's cache
    key) is refused with one line."""
    cxx, _ = _copying_compiler(fresh_native, good_library)
    monkeypatch.setenv("CXX", cxx)
    monkeypatch.setattr(native, "ABI_VERSION", native.ABI_VERSION + 1)
    assert native.unavailable_reason() == (
        f"stale library (ABI {native.ABI_VERSION - 1}, expected {native.ABI_VERSION})"
    )


@pytest.mark.needs_native
@pytest.mark.parametrize(("module", "macro"), [(native, "SRNN_ABI"), (sparse_kernel, "SPL_ABI")])
def test_the_sources_refuse_to_build_without_their_abi_version(module, macro, tmp_path):
    source = tmp_path / module.SOURCE.name
    source.write_text(assemble(module.SOURCE))
    plain = subprocess.run(["c++", "-std=c++17", "-fsyntax-only", str(source)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plain.returncode != 0 and f"build with -D{macro}=<n>" in plain.stderr
    given = subprocess.run(["c++", "-std=c++17", "-fsyntax-only", f"-D{macro}=1", str(source)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert given.returncode == 0, given.stderr


def test_a_source_is_assembled_from_its_included_parts(tmp_path):
    (tmp_path / "part.cpp").write_text('#include "inner.cpp"\nint part();\n')
    (tmp_path / "inner.cpp").write_text("int inner();\n")
    main = tmp_path / "main.cpp"
    main.write_text('#include <cstdint>\n#include "part.cpp"\nint main();\n')
    assert assemble(main) == (
        '#line 1 "main.cpp"\n#include <cstdint>\n'
        '#line 1 "part.cpp"\n#line 1 "inner.cpp"\nint inner();\n\n#line 2 "part.cpp"\nint part();\n'
        '\n#line 3 "main.cpp"\nint main();\n'
    )


def test_a_library_without_layouts_is_refused_in_one_line():
    """A shared object that exports no layouts (not one of ours, or built before they
    existed) is refused, not loaded with unchecked structs."""
    from sparsernn.nn._build import NativeUnavailable

    with pytest.raises(NativeUnavailable, match="^the library exports no struct layouts"):
        exported_layout(ctypes.CDLL(None), "srnn", "Layer")
