"""Atomic writes give files the mode ``open`` would: ``0o666 & ~umask``, or the replaced file's."""

import os
import stat

import pytest

from sparsernn import _files, store
from sparsernn.data import Dataset, write_csv
from sparsernn.models import ModelConfig, build_model
from sparsernn.train import save_checkpoint


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _writers():
    model = build_model(ModelConfig(cell="rnn_tanh", hidden_size=3, embedding_dim=2), seed=0)
    data = Dataset(["BTXSE", "BPE"], [1, 0])
    return {
        "_files.atomic_write_bytes": lambda p: _files.atomic_write_bytes(p, b"x"),
        "_files.atomic_save": lambda p: _files.atomic_save(b"y", p, lambda obj, fh: fh.write(obj)),
        "train.save_checkpoint": lambda p: save_checkpoint(p, model),
        "data.write_csv": lambda p: write_csv(data, p),
    }


def test_current_umask_reads_without_changing_it(umask):
    assert _files.current_umask() == umask
    assert os.umask(umask) == umask


@pytest.mark.parametrize("name", list(_writers()))
def test_new_files_follow_the_umask(tmp_path, umask, name):
    path = tmp_path / f"{name}.out"
    _writers()[name](path)
    assert _mode(path) == 0o666 & ~umask  # 0644 under umask 022, 0600 under 077
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("name", list(_writers()))
def test_replacing_keeps_the_old_files_mode(tmp_path, umask, name):
    path = tmp_path / f"{name}.out"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    _writers()[name](path)
    assert _mode(path) == 0o640
    assert path.read_bytes() != b"old"


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        _files.atomic_write(path, boom)
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_the_store_reexports_the_one_atomic_writer():
    assert store.atomic_write_bytes is _files.atomic_write_bytes
    assert store.atomic_save is _files.atomic_save
