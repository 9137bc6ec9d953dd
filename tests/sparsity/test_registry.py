"""The registry is the one dispatch: every method a class with the protocol, the study and
``sparsify`` reach methods through it, and the docs list it and show how to add one."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from sparsernn import sparsify
from sparsernn.experiments.config import PruningConfig
from sparsernn.experiments.units import execute, plan_units
from sparsernn.sparsity import METHODS, STUDY_METHODS, SparsityMethod
from tests.sparsity.test_study_methods import _study
from tests.sparsity.user_model import user_batch, user_model

DOC = Path(__file__).parents[2] / "docs" / "sparsify.md"


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_is_a_class_with_the_protocol(name):
    cls = METHODS[name]
    assert issubclass(cls, SparsityMethod) and cls.name == name and cls.summary
    assert dataclasses.is_dataclass(cls.options_class)
    options = cls.options_class()  # every option has a default
    assert options.__dataclass_params__.frozen
    for field in cls.study_options or ():
        assert field in {f.name for f in dataclasses.fields(PruningConfig)}, field


def test_study_methods_are_those_with_study_options_in_registry_order():
    assert STUDY_METHODS == ("magnitude", "random", "snip", "agp", "lottery", "set", "rigl")
    assert [m for m in METHODS if METHODS[m].study_options is not None] == list(STUDY_METHODS)


def test_a_study_unit_runs_the_class_the_registry_names(monkeypatch):
    """Replace one method's study entry point: the unit runs the replacement (nothing else
    decides what a method does)."""
    calls = []
    cls = METHODS["random"]
    original = cls.for_study.__func__

    def spy(klass, unit):
        calls.append((klass.name, unit.sparsity, unit.target))
        return original(klass, unit)

    monkeypatch.setattr(cls, "for_study", classmethod(spy))
    study = _study(method="random", retrain_epochs=0)
    base, prune = plan_units(study)[:2]
    base_out = execute({"kind": "base", "config": base.config})
    out = execute({"kind": "prune", "config": prune.config}, base_out["files"]["model.pt"])
    assert out["status"] == "done", out.get("error")
    assert calls == [("random", 0.5, "both")]
    assert out["metrics"]["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_sparsify_takes_a_method_class_of_ones_own():
    class EveryOther(SparsityMethod):
        name, summary = "every_other", "keep every other weight (a test)"

        def initial_masks(self):
            masks = {}
            for prefix, mod in self.model.named_modules():
                for weight, mask in getattr(mod, "masks", lambda: [])():
                    keep = torch.zeros_like(mask)
                    keep.view(-1)[::2] = True
                    masks[f"{prefix}.{weight}"] = keep
            return masks

    model = user_model()
    sp = sparsify(model, EveryOther, 0.5)
    assert sp.method.name == "every_other"
    assert (sp.report().groupby("weight")["sparsity"].sum() > 0).all()
    assert model.encoder.weight_hh_l0_mask.view(-1)[1::2].any().item() is False


def test_the_docs_list_every_method_with_its_summary():
    text = DOC.read_text()
    for name, cls in METHODS.items():
        summary = cls.summary.replace("|", "\\|")  # as Markdown tables escape it
        assert f"| `{name}` | {summary} |" in text, name


def test_the_docs_worked_example_adds_a_method_that_works():
    """The 'adding a method' example of docs/sparsify.md, run as written."""
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (source,) = [b for b in blocks if "class Movement(" in b]
    namespace: dict = {}
    exec(compile(source, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    cls = namespace["Movement"]
    model = user_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sp = sparsify(model, cls, 0.5, optimizer=optimizer, at_step=3)
    assert sp.report()["sparsity"].eq(0).all()  # dense until step 3
    for seed in range(3):
        loss = torch.nn.functional.cross_entropy(model(user_batch(seed)[0]), user_batch(seed)[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sp.step()
    report = sp.report()
    assert (report["sparsity"] - 0.5).abs().max() <= 1 / report["size"].min()
