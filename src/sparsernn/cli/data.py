"""``sparsernn data``: generate, check and compare data sets."""

from __future__ import annotations

from pathlib import Path

import click

from sparsernn.cli.base import cli, friendly, parse_mix


# ----------------------------------------------------------------------------------- data
@cli.group()
def data() -> None:
    """Generate and check Reber-grammar data sets (the study's CSV format)."""


@data.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for train.csv and test.csv.",
)
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@click.option("--n-strings", default=25000, show_default=True, help="Total strings (train+test).")
@click.option(
    "--mix",
    default="alternative=1",
    show_default=True,
    help="Shares of negative kinds, KIND=SHARE,...: alternative (the study's), iid_foreign, "
    "broken_transition, edit.",
)
@click.option("--min-length", default=11, show_default=True)
@click.option("--max-length", default=53, show_default=True)
@click.option("--test-fraction", default=0.25, show_default=True)
@click.option("--seed", default=0, show_default=True)
@friendly
def data_generate(out, grammar, n_strings, mix, min_length, max_length, test_fraction, seed):
    """Write train.csv and test.csv (header string,valid) for a generated data set."""
    from sparsernn.data import DataSpec, make_dataset, write_csv

    spec = DataSpec.from_dict(  # from_dict: --mix shares are text, made canonical there
        dict(
            grammar=grammar,
            n_strings=n_strings,
            negative_mix=parse_mix(mix),
            min_length=min_length,
            max_length=max_length,
            test_fraction=test_fraction,
            seed=seed,
        )
    )
    train, test = make_dataset(spec)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(train, out / "train.csv")
    write_csv(test, out / "test.csv")
    (out / "dataspec.json").write_text(spec.to_json())
    click.echo(f"wrote {len(train)} train and {len(test)} test strings to {out}")


@data.command("check")
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@friendly
def data_check(csv_files, grammar):
    """Validate CSV files and describe them per class and negative kind.

    Give train and test files together to check that they share no string. A string labelled
    both valid and invalid is an error.
    """
    from sparsernn.data import get_grammar, read_csv
    from sparsernn.data.dataset import encode
    from sparsernn.data.describe import check_labels_agree, describe, duplicates
    from sparsernn.errors import DataError

    g = get_grammar(grammar)
    sets = [read_csv(f) for f in csv_files]
    for path, ds in zip(csv_files, sets, strict=True):
        try:
            encode(ds.strings)  # a NUL or a code the model cannot read fails as a study would
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        check_labels_agree(ds, str(path))
        wrong = sum(int(g.accepts(s)) != int(y) for s, y in zip(ds.strings, ds.labels, strict=True))
        dup = duplicates(ds)
        click.echo(f"{path}: {len(ds)} strings, {int(ds.labels.sum())} valid")
        click.echo(describe(ds, g).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        click.echo(f"label disagrees with {g.name}: {wrong}")
        click.echo(
            f"duplicated strings: {len(dup)} ({int(dup['count'].sum()) if len(dup) else 0} rows)"
        )
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            shared = len(set(a.strings) & set(sets[j].strings))
            click.echo(f"strings in both {csv_files[i]} and {csv_files[j]}: {shared}")


@data.command("compare")
@click.argument("file_a", type=click.Path(path_type=Path))
@click.argument("file_b", type=click.Path(path_type=Path))
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@friendly
def data_compare(file_a, file_b, grammar):
    """Compare two CSV data sets per class, family and negative kind (counts, lengths, TV)."""
    from sparsernn.data import read_csv
    from sparsernn.data.describe import compare, letter_share_tv

    a, b = read_csv(file_a), read_csv(file_b)
    click.echo(f"a = {file_a} ({len(a)} strings), b = {file_b} ({len(b)} strings)")
    table = compare(a, b, grammar)
    click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for cls, tv in letter_share_tv(a, b).items():
        click.echo(f"letter-share TV ({cls}): {tv:.3f}")
    click.echo(f"strings in both: {len(set(a.strings) & set(b.strings))}")
