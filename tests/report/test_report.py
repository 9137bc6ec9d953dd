"""The HTML report: built from a tiny real study, self-contained, and robust to missing results."""

from __future__ import annotations

import base64
import dataclasses
import html
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsernn.data import DataSpec
from sparsernn.errors import StoreError
from sparsernn.experiments.config import PruningConfig, StructureConfig, StudyConfig
from sparsernn.experiments.results import StudyResults, load_results
from sparsernn.experiments.runner import run_study
from sparsernn.report import SECTIONS, build_report, markdown_table
from sparsernn.store import ResultsStore
from sparsernn.train import TrainConfig

TINY = StudyConfig(
    cells=("gru", "rnn_tanh"),
    data=DataSpec(n_strings=200),  # the study's task and model sizes: published figures shown
    train=TrainConfig(epochs=1),
    pruning=PruningConfig(targets=("both", "h2h"), amounts=(50, 100), retrain_epochs=1),
    structure=StructureConfig(n_graphs=3, nodes=(10, 12), epochs=1),
)
TABLES = (
    "setup",
    "pruning_base_accuracy",
    "pruning_tolerated",
    "pruning_recovery",
    "structure_mean_accuracy",
    "correlations_published",
    "correlations_all",
    "prediction_leave_one_generator_out",
)


class _Refs(HTMLParser):
    """Collects every src/href attribute and the ids of <h2> headings."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.h2_ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))
            if tag == "h2" and name == "id" and value:
                self.h2_ids.append(value)


def _parse(text: str) -> _Refs:
    parser = _Refs()
    parser.feed(text)
    return parser


def _sections(text: str) -> dict[str, str]:
    """Section id -> that section's HTML."""
    return dict(re.findall(r'<section><h2 id="([a-z_]+)">(.*?)</section>', text, flags=re.S))


def _errors(text: str) -> list[str]:
    return [sid for sid, body in _sections(text).items() if 'class="error"' in body]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyResults:
    out = tmp_path_factory.mktemp("tiny_study")
    run = run_study(TINY, out, workers=1, progress=False)
    assert run.failed == 0 and run.done == run.total
    return load_results(out)


@pytest.fixture(scope="module")
def report(study: StudyResults, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(study.study_dir, tmp_path_factory.mktemp("rep") / "report.html")


def test_report_from_real_study_is_complete_and_self_contained(report: Path):
    text = report.read_text(encoding="utf-8")
    parsed = _parse(text)
    assert parsed.h2_ids == list(SECTIONS)
    assert _errors(text) == []
    images = [v for tag, name, v in parsed.refs if tag == "img"]
    assert len(images) >= 7
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    for _, _, value in parsed.refs:
        assert not value.lower().startswith(("http://", "https://", "//")), value
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, flags=re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()


def test_report_writes_every_table_as_csv_and_markdown(report: Path):
    tables = report.parent / "report_tables"
    for name in TABLES:
        csv, md = tables / f"{name}.csv", tables / f"{name}.md"
        assert csv.is_file() and md.is_file(), name
        frame = pd.read_csv(csv)
        lines = md.read_text().splitlines()
        assert len(lines) == len(frame) + 2 and lines[0].startswith("| "), name
    tolerated = pd.read_csv(tables / "pruning_tolerated.csv")
    gru_both = tolerated[(tolerated["cell"] == "gru") & (tolerated["target"] == "both")]
    assert set(gru_both["published_safe"]) == {80}  # from analysis.published, not re-typed here
    assert set(gru_both["epoch"]) == {0, 1}
    base = pd.read_csv(tables / "pruning_base_accuracy.csv").set_index("cell")
    assert base.loc["rnn_tanh", "published"] == pytest.approx(0.937)
    mean = pd.read_csv(tables / "structure_mean_accuracy.csv")
    assert set(mean["generator"]) == {"ws", "ba", "all"}


def test_constant_accuracies_are_reported_as_undefined_r2(report: Path):
    # networks this tiny all sit at chance: R^2 is undefined, and the report must say so
    prediction = _sections(report.read_text(encoding="utf-8"))["prediction"]
    assert "R^2 is undefined" in prediction
    assert not (report.parent / "report_tables" / "prediction_cross_validated.csv").exists()


def test_cross_validated_table_when_accuracy_depends_on_size(study: StudyResults, tmp_path: Path):
    structure = study.structure.copy()
    structure["test_accuracy"] = 0.5 + 0.01 * structure["nodes"] + 0.001 * structure["edges"]
    out = build_report(dataclasses.replace(study, structure=structure), tmp_path / "cv.html")
    table = pd.read_csv(out.parent / "cv_tables" / "prediction_cross_validated.csv")
    assert {"bayesian_ridge", "dummy_mean", "size_only"} <= set(table["model"])
    assert not _errors(out.read_text(encoding="utf-8"))


def test_report_sections_show_the_expected_content(report: Path):
    sections = _sections(report.read_text(encoding="utf-8"))
    assert "gru, rnn_tanh" in sections["setup"] and "units done" in sections["setup"]
    assert "Tolerated sparsity" in sections["pruning"] and "published_safe" in sections["pruning"]
    assert "Epochs to recover" in sections["pruning"]
    assert "No failed units" in sections["failures"]
    assert "bayesian_ridge" in sections["prediction"] and "dummy_mean" in sections["prediction"]


def test_empty_store_gives_report_that_says_what_is_missing(tmp_path: Path):
    ResultsStore.open(tmp_path / "empty").close()
    text = build_report(tmp_path / "empty", tmp_path / "r.html").read_text()
    sections = _sections(text)
    # without structure runs their two analyses have no section: the structure section says so
    assert list(sections) == ["setup", "pruning", "structure", "failures"]
    assert _errors(text) == []
    assert "no finished units" in sections["setup"]
    assert "No base models or pruning runs" in sections["pruning"]
    assert "<code>sparsernn prune --out" in sections["pruning"]
    assert "No random-structure runs in this study: run <code>sparsernn structure" in (
        sections["structure"]
    )
    assert text.count("No random-structure runs") == 1


def test_missing_study_dir_raises_store_error(tmp_path: Path):
    with pytest.raises(StoreError):
        build_report(tmp_path / "nowhere", tmp_path / "r.html")


def test_pruning_only_study(study: StudyResults, tmp_path: Path):
    results = dataclasses.replace(study, structure=study.structure.iloc[:0])
    text = build_report(results, tmp_path / "p.html").read_text()
    sections = _sections(text)
    assert _errors(text) == []
    assert "Tolerated sparsity" in sections["pruning"] and "<img" in sections["pruning"]
    assert list(sections) == ["setup", "pruning", "structure", "failures"]
    assert "No random-structure runs" in sections["structure"]
    assert text.count("No random-structure runs") == 1
    assert 'href="#correlations"' not in text and 'href="#prediction"' not in text
    assert (tmp_path / "p_tables" / "pruning_tolerated.csv").is_file()
    assert not (tmp_path / "p_tables" / "structure_mean_accuracy.csv").exists()


def test_structure_only_study_with_one_generator(study: StudyResults, tmp_path: Path):
    ws = study.structure[study.structure["generator"] == "ws"]
    empty = {
        f: getattr(study, f).iloc[:0] for f in ("base", "base_curves", "pruning", "pruning_points")
    }
    results = dataclasses.replace(study, structure=ws, **empty)
    text = build_report(results, tmp_path / "s.html", n_boot=50, n_repeats=1).read_text()
    sections = _sections(text)
    assert _errors(text) == []
    assert "No base models or pruning runs" in sections["pruning"]
    assert "Only one generator (ws)" in sections["structure"]
    # 3 graphs per cell: fewer rows than the study protocol and the folds need
    assert "too few rows" in sections["prediction"]
    assert "needs at least two" in sections["prediction"]  # leave-one-generator-out


def test_a_failing_analysis_is_reported_in_its_section_only(
    study: StudyResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from sparsernn.report import html as report_html

    def boom(*args, **kwargs):
        raise RuntimeError("correlations exploded")

    monkeypatch.setattr(report_html.analysis, "correlations", boom)
    results = dataclasses.replace(
        study,
        pruning=study.pruning.iloc[:0],
        pruning_points=study.pruning_points.iloc[:0],
        structure=study.structure[study.structure["generator"] == "ws"],
    )
    text = build_report(results, tmp_path / "e.html", n_boot=50, n_repeats=1).read_text()
    assert _errors(text) == ["correlations"]
    assert "RuntimeError: correlations exploded" in _sections(text)["correlations"]


def _md_cells(line: str) -> list[str]:
    """The cells of one Markdown table row (``\\|`` is an escaped pipe inside a cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_markdown_table_escapes_and_aligns():
    # (the columns are padded to equal width by tabulate: compare cells, not spacing)
    df = pd.DataFrame({"name": ["a|b", None], "r": [0.5, float("nan")], "n": [1, 2]})
    lines = markdown_table(df).splitlines()
    assert [_md_cells(line) for line in lines[:1] + lines[2:]] == [
        ["name", "r", "n"],
        ["a\\|b", "0.500", "1"],
        ["–", "–", "2"],
    ]
    align = _md_cells(lines[1])
    assert not align[0].endswith(":") and all(re.fullmatch(r":?-+:", a) for a in align[1:])


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    return None


_CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    if (!img.complete || img.naturalWidth === 0) { broken++; }
  }
  document.body.dataset.broken = String(broken);
  document.body.dataset.images = String(document.images.length);
});
</script>
</body>"""


def test_every_image_loads_in_headless_chromium(report: Path, tmp_path: Path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    text = report.read_text(encoding="utf-8")
    n_images = len(re.findall(r"<img ", text))
    page = tmp_path / "checked.html"
    page.write_text(text.replace("</body>", _CHECK_IMAGES), encoding="utf-8")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'data-images="{n_images}"' in done.stdout
    assert 'data-broken="0"' in done.stdout


# ------------------------------------------------------------------------ caveats, escaping
def _with_study(study: StudyResults, **changes) -> StudyResults:
    """``study`` as if every stored config (the study's and each kind's plan) had ``changes``.

    Nested dicts merge one level.
    """

    def changed(config: dict) -> dict:
        config = {**config}
        for name, value in changes.items():
            config[name] = {**config[name], **value} if isinstance(value, dict) else value
        return config

    studies = {kind: changed(cfg) for kind, cfg in (study.studies or {}).items()}
    return dataclasses.replace(study, study=changed(study.study), studies=studies)


def _top(text: str) -> str:
    """The page above the first section."""
    return text.split("<section>", 1)[0]


def _has_published_columns(text: str) -> bool:
    return (
        re.search(r"<th\b[^>]*>\s*(published|published_safe|difference)\s*</th>", text) is not None
    )


def test_published_column_check_sees_rendered_headers():
    # the check above must match the table markup the report writes, or its negative use is void
    from sparsernn.report.tables import html_table

    assert _has_published_columns(html_table(pd.DataFrame({"published": [0.5]}), "t"))
    assert not _has_published_columns(html_table(pd.DataFrame({"ours": [0.5]}), "t"))


def test_study_task_run_shows_published_figures_and_collapsed_config(report: Path):
    text = report.read_text(encoding="utf-8")
    assert _has_published_columns(text)
    assert "Published figures are not shown" not in text
    assert "<details><summary>Study configuration" in text  # collapsed: no "open"
    assert "<details open" not in text
    # TINY trains 1 epoch on 3 graphs per cell: said once at the top, in one sentence
    (caveat,) = re.findall(r'<p class="caveat">(.*?)</p>', _top(text))
    assert caveat.startswith("These numbers are not meaningful results: ")
    assert "base models trained 1 epoch(s)" in caveat and "too few for an R²" in caveat
    assert caveat.count(".") == 1 and "smoke" not in caveat


def test_smoke_profile_says_so_and_replaces_empty_plots(
    study: StudyResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from sparsernn.experiments.config import profile
    from sparsernn.report import html as report_html

    smoke = profile("smoke").to_dict()
    results = _with_study(study, **{k: smoke[k] for k in ("train", "pruning", "structure")})
    # As in a real smoke run: too few networks for out-of-fold predictions.
    empty = pd.DataFrame(columns=["cell", "model", "actual", "predicted"])
    monkeypatch.setattr(report_html.analysis, "predicted_vs_actual", lambda *a, **k: empty)
    text = build_report(results, tmp_path / "smoke.html", n_boot=20, n_repeats=1).read_text()
    (caveat,) = re.findall(r'<p class="caveat">(.*?)</p>', _top(text))
    assert "the <code>smoke</code> profile, a pipeline check" in caveat
    # Empty plots (too few graphs for out-of-fold predictions) used to be images saying
    # "no data: no rows"; now they are text naming the reason and the caveat.
    pattern = r'<p class="missing">(Out-of-fold predictions[^:]*: nothing to plot .*?)</p>'
    (replaced,) = re.findall(pattern, text)
    assert "(no rows; see the note at the top)" in replaced and "no data: no rows" not in text
    assert text.count(caveat) == 1  # said once, at the top, not again in every empty plot
    assert _has_published_columns(text)  # the study's task: comparable, if meaningless


@pytest.mark.parametrize(
    "changes",
    [
        {"data": {"grammar": "embedded_reber"}},
        {"data": {"negative_mix": [["edit", 1.0]]}},
        {"data": {"train_csv": "a.csv", "test_csv": "b.csv"}},
        {"hidden_size": 16},
    ],
    ids=["embedded_reber", "negative_mix", "own_csv", "model_size"],
)
def test_other_task_or_model_omits_published_figures(study, tmp_path: Path, changes):
    results = _with_study(study, **changes)
    text = build_report(results, tmp_path / "r.html", n_boot=20, n_repeats=1).read_text()
    top = _top(text)
    sentences = re.findall(r'<p class="caveat">(Published figures are not shown: .*?)</p>', top)
    assert len(sentences) == 1 and sentences[0].count(". ") == 0
    assert not _has_published_columns(text)
    assert "Published = the study" not in text and "Published epoch times" not in text
    tolerated = pd.read_csv(tmp_path / "r_tables" / "pruning_tolerated.csv")
    assert "published_safe" not in tolerated.columns and "difference" not in tolerated.columns
    if "data" in changes and "grammar" in changes["data"]:
        assert 'data.grammar = "embedded_reber"' in html.unescape(sentences[0])
        assert '"embedded_reber"' not in sentences[0]  # the quotes are escaped


def test_user_supplied_text_is_escaped(study: StudyResults, tmp_path: Path):
    evil = "<script>alert(1)</script>"
    results = _with_study(study, data={"train_csv": evil, "test_csv": evil})
    results = dataclasses.replace(results, study_dir=tmp_path / evil.replace("/", "_"))
    text = build_report(results, tmp_path / "e.html", n_boot=20, n_repeats=1).read_text()
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text


def test_report_files_follow_the_umask(study: StudyResults, tmp_path: Path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = build_report(study, tmp_path / "m.html", n_boot=20, n_repeats=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ------------------------------------------------------------------------ per-kind configuration
def _details(text: str) -> dict[str, str]:
    """``<details>`` summary -> its (unescaped) preformatted text."""
    found = re.findall(r"<details><summary>(.*?)</summary><pre>(.*?)</pre></details>", text, re.S)
    return {html.unescape(k): html.unescape(v) for k, v in found}


def test_each_kind_is_shown_and_judged_with_its_own_config(study: StudyResults, tmp_path: Path):
    # `prune` (1 epoch, amounts 50/100, tolerance 0.05) then `structure` into one directory:
    # the last command's config carries the structure command's pruning and training defaults.
    prune = _with_study(study, pruning={"tolerance": 0.05}).study
    structure = _with_study(
        study, train={"epochs": 50}, pruning={"amounts": [10.0, 20.0, 30.0], "tolerance": 0.01}
    ).study
    results = dataclasses.replace(
        study, study=structure, studies={"structure": structure, "base": prune, "prune": prune}
    )
    text = build_report(results, tmp_path / "k.html", n_boot=20, n_repeats=1).read_text()
    setup = _sections(text)["setup"]
    blocks = _details(setup)
    # `prune` planned base and prune with one config: shown once for both
    pruned = "Study configuration of the base and prune units"
    assert list(blocks) == [pruned, "Study configuration of the structure units"]
    assert "amounts = [\n    50.0,\n    100.0,\n]" in blocks[pruned]
    assert "10.0" not in blocks[pruned]
    assert "20.0" in blocks["Study configuration of the structure units"]
    assert "[train]\nepochs = 1\n" in blocks[pruned]
    # settings come from the kind that uses them: the prune config's tolerance, the base
    # config's epochs (the last command's 50 epochs would hide the caveat)
    setup_table = pd.read_csv(tmp_path / "k_tables" / "setup.csv").set_index("item")["value"]
    assert setup_table["pruning tolerance"] == "0.05"
    (caveat,) = re.findall(r'<p class="caveat">(.*?)</p>', _top(text))
    assert "base models trained 1 epoch(s)" in caveat


def test_one_commands_config_is_shown_once_for_all_its_kinds(study: StudyResults, tmp_path):
    same = study.study  # `reproduce` plans base, prune and structure with one config
    results = dataclasses.replace(study, studies={"structure": same, "base": same, "prune": same})
    text = build_report(results, tmp_path / "one.html", n_boot=20, n_repeats=1).read_text()
    assert list(_details(_sections(text)["setup"])) == [
        "Study configuration of the base, prune and structure units"
    ]
    other = _with_study(study, pruning={"tolerance": 0.05}).study
    results = dataclasses.replace(study, studies={"structure": same, "base": other, "prune": other})
    text = build_report(results, tmp_path / "two.html", n_boot=20, n_repeats=1).read_text()
    assert list(_details(_sections(text)["setup"])) == [
        "Study configuration of the base and prune units",
        "Study configuration of the structure units",
    ]


def test_store_without_per_kind_configs_shows_one_block(study: StudyResults, tmp_path: Path):
    results = dataclasses.replace(study, studies={})  # an old store: no per-kind plans
    text = build_report(results, tmp_path / "one.html", n_boot=20, n_repeats=1).read_text()
    assert list(_details(_sections(text)["setup"])) == ["Study configuration (study.toml)"]


def test_file_graph_names_and_failures_are_escaped(study: StudyResults, tmp_path: Path):
    evil = '<img src=x onerror="alert(1)">'
    structure = study.structure.copy()
    structure["generator"] = "file"
    structure["graph"] = evil + structure["graph_id"].astype(str)
    failures = pd.DataFrame(
        {"key": [evil], "kind": ["structure"], "error": [f"Traceback\n{evil}"], "attempts": [1]}
    )
    results = dataclasses.replace(study, structure=structure, failures=failures)
    text = build_report(results, tmp_path / "f.html", n_boot=20, n_repeats=1).read_text()
    assert "<img src=x" not in text and 'onerror="' not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;0" in _sections(text)["structure"]
    assert f"{evil} (structure)" in _details(_sections(text)["failures"])
    graphs = pd.read_csv(tmp_path / "f_tables" / "structure_graphs.csv")
    assert set(graphs["graph"]) == {evil + str(i) for i in structure["graph_id"].unique()}


def test_several_sparsity_methods_get_their_own_table_and_the_study_tables_stay_magnitude(
    study: StudyResults, tmp_path: Path
):
    """A grid run with two methods: a per-method table, and the published comparisons (which
    need one row per cell and target) built from the magnitude runs only, without an error."""
    magnitude = study.pruning.assign(method="magnitude")
    worse = magnitude.assign(method="random", accuracy=magnitude["accuracy"] * 0.5)
    results = dataclasses.replace(study, pruning=pd.concat([magnitude, worse], ignore_index=True))
    text = build_report(results, tmp_path / "m.html", n_boot=20, n_repeats=1).read_text()
    assert _errors(text) == []
    table = pd.read_csv(tmp_path / "m_tables" / "pruning_methods.csv")
    assert set(table["method"]) == {"magnitude", "random"}
    last = magnitude[magnitude["epoch"] == magnitude["epoch"].max()]
    mean = last.groupby(["cell", "target", "amount"])["accuracy"].mean()
    got = table[table["method"] == "random"].set_index(["cell", "target", "amount"])["accuracy"]
    assert np.allclose(got.sort_index().to_numpy(), 0.5 * mean.sort_index().to_numpy())
    assert "use the magnitude method's runs only" in html.unescape(_sections(text)["pruning"])


def test_suggested_commands_quote_the_study_directory(tmp_path: Path):
    import shlex

    odd = tmp_path / "my study $(touch PWNED)"
    ResultsStore.open(odd).close()
    text = build_report(odd, tmp_path / "q.html").read_text()
    sections = {k: html.unescape(v) for k, v in _sections(text).items()}
    quoted = shlex.quote(str(odd))
    assert quoted.startswith("'") and f"sparsernn structure --out {quoted}" in (
        sections["structure"]
    )
    assert f"sparsernn prune --out {quoted}" in sections["pruning"]
