"""The catalog: one table of truth for models, explainers, metrics and cells."""

from __future__ import annotations

import json
import os

import pytest
from conftest import (
    DINA_EXPLAINERS,
    DINA_METRICS,
    DINA_MODELS,
    PUBLISHED_CONFIGS,
    REFERENCE_EXPLAINERS,
    UNPUBLISHED,
    configs_with,
)

from dina_datasets import catalog
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError


def test_grid_has_the_published_coverage():
    assert tuple(catalog.MODELS) == DINA_MODELS
    assert tuple(catalog.EXPLAINERS) == DINA_EXPLAINERS + REFERENCE_EXPLAINERS
    names = catalog.config_names()
    assert names[:117] == [c.name for c in catalog.published_cells()]
    assert sorted(names[:117]) == sorted(PUBLISHED_CONFIGS)
    assert len(PUBLISHED_CONFIGS) == 117


def test_reference_explainers_are_contributed_cells_of_every_model():
    assert tuple(catalog.reference_explainers()) == REFERENCE_EXPLAINERS
    for name in REFERENCE_EXPLAINERS:
        spec = catalog.explainer(name)
        assert spec.reference and spec.contributed and spec.channels == 1
        assert getattr(spec, "reference", False) is True
        cells = [c for c in catalog.cells() if c.explainer == name]
        assert tuple(c.model for c in cells) == DINA_MODELS
        assert not any(c.published for c in cells)
    assert not any(getattr(s, "reference", False) for n, s in catalog.EXPLAINERS.items()
                   if n not in REFERENCE_EXPLAINERS)
    names = catalog.config_names()
    assert sorted(names[117:]) == sorted(f"{m}-{e}" for m in DINA_MODELS
                                         for e in REFERENCE_EXPLAINERS)
    with pytest.raises(ConfigError, match="built-in entries cannot be replaced"):
        catalog.register_explainer("Sobel", "x:y", channels=1, replace=True)
    with pytest.raises(ConfigError, match="not a contributed"):
        catalog.unregister("RandomExp")


@pytest.mark.parametrize("channels", [1, 3])
def test_every_config_round_trips_by_name(channels):
    """Every published config (here those of one channel count), by any spelling; the
    reference explainers' configs with the one-channel ones."""
    extra = [f"{m}-{e}" for m in DINA_MODELS for e in REFERENCE_EXPLAINERS]
    for name in configs_with(channels) + (extra if channels == 1 else []):
        cell = catalog.Cell.from_name(name)
        assert cell.name == name and cell.published == (name in PUBLISHED_CONFIGS)
        assert catalog.Cell.from_name(name.lower()) == cell
        assert catalog.Cell.from_name(name.upper()).name == name
        assert cell.shape == (224, 224, channels), name


def test_unknown_config_lists_closest_valid_names():
    with pytest.raises(ConfigError, match="did you mean 'DinoV2-Rise'") as info:
        catalog.Cell.from_name("DinoV2-Rize")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="did you mean 'ResNet50-Saliency'"):
        catalog.Cell.from_name("Resnet5-Saliency")
    with pytest.raises(ConfigError, match="must look like 'Model-Explainer'"):
        catalog.Cell.from_name("DinoV2")


def test_missing_cells_say_they_are_not_in_dina_and_why():
    assert len(UNPUBLISHED) == 9
    for name in sorted(UNPUBLISHED):
        with pytest.raises(ConfigError,
                           match=f"'{name}' is not in DINA: .*(convolutional|publish)"):
            catalog.Cell.from_name(name)
        assert catalog.Cell.from_name(name, allow_missing=True).published is False


def test_unknown_model_and_explainer_list_the_valid_values():
    with pytest.raises(ConfigError, match="unknown model 'Dino'.*did you mean 'DinoV2'.*valid"):
        catalog.model("Dino")
    with pytest.raises(ConfigError, match="unknown explainer 'Sobol'.*SobolAttributionMethod"):
        catalog.explainer("Sobol")
    with pytest.raises(ConfigError, match="unknown metric 'Insert'.*Insertion"):
        catalog.metric("Insert")
    assert catalog.model("dinov2").name == "DinoV2"


def test_metrics_table():
    assert tuple(catalog.METRICS) == DINA_METRICS
    assert {m.name for m in catalog.iter_metrics("randomization")} == {
        n for n, m in catalog.METRICS.items() if m.subset == 1024}
    assert catalog.metric("Deletion").score_file == "Deletion_scores.json"
    assert catalog.metric("Deletion").params["nb_steps"] == 200
    assert [m.name for m in catalog.iter_metrics() if not m.depends_on_activation] == [
        "Sparseness", "Complexity"]


def test_registering_a_model_adds_its_configs_everywhere():
    try:
        catalog.register_model("TinyNet", "my_package.models:tiny", input_size=32,
                               rescale_mode="tf", has_conv=False)
        names = catalog.config_names()
        assert names[:117] == [c.name for c in catalog.published_cells()]
        assert "TinyNet-Rise" in names and "TinyNet-GradCAM" not in names
        cell = catalog.Cell.from_name("tinynet-rise")
        assert cell.name == "TinyNet-Rise" and not cell.published
        with pytest.raises(ConfigError, match="already exists"):
            catalog.register_model("tinynet", "x:y")
        with pytest.raises(ConfigError, match="without '-'"):
            catalog.register_model("Tiny-Net", "x:y")
        with pytest.raises(ConfigError, match="built-in entries cannot be replaced"):
            catalog.register_model("ResNet50", "x:y", replace=True)
    finally:
        catalog.unregister("TinyNet")
    assert "TinyNet-Rise" not in catalog.config_names()


def test_registering_an_explainer_checks_channels():
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        catalog.register_explainer("Mine", "Saliency", channels=2)
    try:
        catalog.register_explainer("Mine", "Saliency", channels=3, params={"reducer": None})
        assert len([c for c in catalog.cells() if c.explainer == "Mine"]) == 9
    finally:
        catalog.unregister("Mine")


def test_dina_configs_json(capsys):
    assert main(["configs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len([r for r in rows if r["published"]]) == 117
    assert {r["explainer"] for r in rows if r["reference"]} == set(REFERENCE_EXPLAINERS)
    assert len(rows) == 117 + 27 and not any(r["published"] for r in rows if r["reference"])
    row = next(r for r in rows if r["config"] == "DinoV2-Rise")
    assert row["shape"] == [224, 224, 1] and row["record_bytes"] == 200_776
    assert row["size_bytes"] == 200_776 * 50_000
    assert main(["configs", "--model", "maxvit", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 11 + 3


def test_dina_configs_table_and_bad_input(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "DinoV2-Rise" in out and "117 configs, 5,850,000 maps" in out
    assert "DinoV2-Sobel" in out and ("27 contributed (as many maps as the images they are "
                                      "run on), 27 of them the reference explainers'") in out
    assert out.count("(reference, not published)") == 27
    assert main(["configs", "--explainer", "Rize"]) == 2
    err = capsys.readouterr().err
    assert "unknown explainer 'Rize'" in err and "did you mean 'Rise'" in err


def test_tables_are_read_only_outside_register():
    tables = (catalog.MODELS, catalog.EXPLAINERS, catalog.METRICS)
    spec = catalog.model("ResNet50")
    for table in tables:
        with pytest.raises(TypeError):
            table["Extra"] = spec
        with pytest.raises(TypeError):
            del table[next(iter(table))]
        assert not hasattr(table, "pop") and not hasattr(table, "update")
    assert [len(t) for t in tables] == [9, 14 + 3, 8]  # + the reference explainers
    try:  # registering still works, and shows through the read-only views
        catalog.register_model("ViewNet", "pkg.mod:net")
        catalog.register_explainer("ViewBlur", "Saliency", channels=1)
        assert catalog.MODELS["ViewNet"].contributed and "ViewBlur" in catalog.EXPLAINERS
    finally:
        catalog.unregister("ViewNet")
        catalog.unregister("ViewBlur")
    assert "ViewNet" not in catalog.MODELS and "ViewBlur" not in catalog.EXPLAINERS


CATALOG_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                            "getting-started.md")


def test_docs_examples_print_what_the_code_prints(capsys):
    """Every `>>> expression` of the catalog's docs page (docs/getting-started.md) followed
    by `SomeError: message` raises that error with that message (a trailing "..." stands for
    the rest), and the `$ dina configs` lines shown are the command's own."""
    import re

    from dina_datasets import Cell  # noqa: F401  (the page's examples use it

    with open(CATALOG_PAGE, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    checked = 0
    for line, answer in zip(lines, lines[1:], strict=False):  # noqa: RUF007
        match = re.fullmatch(r"(\w+Error): (.*)", answer)
        if not line.startswith(">>> ") or not match:
            continue
        with pytest.raises(Exception) as info:
            eval(line[4:])
        assert type(info.value).__name__ == match[1], line
        shown = match[2]
        real = str(info.value)
        assert real.startswith(shown[:-3]) if shown.endswith("...") else real == shown, (
            f"docs:   {shown}\nreal:   {real}")
        checked += 1
    assert checked >= 2
    assert main(["configs"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = lines.index("$ dina configs") + 1
    block = lines[start:start + next(i for i, x in enumerate(lines[start:])
                                     if x.startswith("$ "))]
    assert block[0] == out[0] and block[-1] == out[-1]
    for shown in block:  # each line shown is a line of the output ("..." skips lines)
        assert shown == "..." or shown in out, shown
