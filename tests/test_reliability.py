"""The reliability card (`stats.reliability`, `dina reliability`): planted scores tables
written here give the grade they were built for (pure noise: unreliable; one ordering on
every image: reliable; nothing beats RandomExp: marked; 60 % all-zero maps: degenerate), each
statistic equals its library on fixed inputs (krippendorff, pingouin, scipy, statsmodels),
the split-half equals a direct computation, and the planted model's check and the test-retest
of a stochastic metric run with a real model."""

from __future__ import annotations

import inspect
import json
import math
import os

import krippendorff
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import proportion_confint

from dina_datasets import Layout, catalog, stats
from dina_datasets.analysis import scores
from dina_datasets.analysis.stats import consistency, grades, validity
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError
from dina_datasets.formats import write_scores

N = 300
EXPLAINERS = ("Saliency", "GradCAM", "Rise", "Lime", "Occlusion", "RandomExp")
CONSISTENT, NOISE, NO_BETTER = "Insertion", "Deletion", "MuFidelity"


def planted_cells() -> dict[tuple[str, str, str], np.ndarray]:
    """ResNet50: Insertion ordered alike on every image (image difficulty varies a lot),
    Deletion pure noise, MuFidelity where RandomExp is best on every image. DinoV2: 60 %
    all-zero maps (Complexity undefined there for every explainer)."""
    rng = np.random.default_rng(7)
    cells = {}
    difficulty = rng.uniform(0, 1, N)
    for j, explainer in enumerate(EXPLAINERS):
        # Insertion: higher is better; RandomExp last, Saliency first, on every image
        cells["ResNet50", explainer, CONSISTENT] = (difficulty + 0.05 * (len(EXPLAINERS) - j)
                                                    + rng.normal(0, 0.005, N))
        cells["ResNet50", explainer, NOISE] = rng.uniform(0, 1, N)
        cells["ResNet50", explainer, NO_BETTER] = (difficulty + rng.normal(0, 0.01, N)
                                                   + (0.5 if explainer == "RandomExp" else 0))
        complexity = rng.uniform(5, 10, N)
        complexity[: int(0.6 * N)] = np.nan
        cells["DinoV2", explainer, "Complexity"] = complexity
        cells["DinoV2", explainer, CONSISTENT] = cells["ResNet50", explainer, CONSISTENT]
    return cells


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    base = tmp_path_factory.mktemp("reliability")
    layout = Layout(str(base / "bucket"))
    for (model, explainer, metric), values in planted_cells().items():
        write_scores(layout.scores(model, explainer, metric), values)
    path = str(base / "scores.parquet")
    scores.build(str(base / "bucket"), path)
    return path


@pytest.fixture(scope="module")
def result(table):
    return stats.reliability(table, n_splits=200, seed=0)


def card(result, model, metric, activation="softmax"):
    cards = result.cards
    hit = cards[(cards["model"] == model) & (cards["metric"] == metric)
                & (cards["activation"] == activation)]
    assert len(hit) == 1, (model, metric)
    return hit.iloc[0]


def test_consistent_ordering_is_reliable(result):
    c = card(result, "ResNet50", CONSISTENT)
    assert c["n"] == N and c["explainers"] == len(EXPLAINERS)
    assert c["split_half"] == pytest.approx(1.0) and c["split_half_low"] >= grades.GOOD
    assert c["alpha"] > 0.95  # centred per image: the difficulty is not disagreement
    assert c["alpha_raw"] < 0.5  # ... which the raw scores would count
    assert c["separates_random"] is True and c["best_vs_random"] == 1.0
    assert c["retest"] == grades.DETERMINISTIC and c["grade"] == "reliable"
    assert c["reasons"] == ""


def test_pure_noise_is_unreliable(result):
    c = card(result, "ResNet50", NOISE)
    # ~0: its interval holds 0 (the estimate itself, on 6 explainers, is 0.5 or more on
    # about one pure-noise table in five, this one included: the interval says so)
    assert c["split_half_low"] < 0 < c["split_half_high"]
    assert abs(c["alpha"]) < 0.02 and abs(c["alpha_raw"]) < 0.02
    assert c["grade"] == "unreliable" and "repeat" in c["reasons"]
    assert c["separates_random"] is False


def test_nothing_beats_random_is_marked(result):
    c = card(result, "ResNet50", NO_BETTER)
    assert c["separates_random"] is False and c["best_vs_random"] == 0.0
    assert "does not separate from random" in c["reasons"]
    assert c["grade"] != "reliable"
    assert c["stochastic"] and c["retest"] == grades.NOT_RUN
    shares = result.validity[(result.validity["metric"] == NO_BETTER)
                             & (result.validity["control"] == "RandomExp")]
    assert len(shares) == len(EXPLAINERS) - 1 and (shares["wins"] == 0).all()
    assert not shares["beats_control"].any()
    section = grades.markdown_section(result, "reliability.png")
    assert section.startswith("## Metric reliability")
    assert "ResNet50 / softmax / MuFidelity: " in section and "does not separate" in section


def test_sixty_percent_all_zero_maps_are_degenerate(result):
    c = card(result, "DinoV2", "Complexity")
    assert c["degenerate_share"] == pytest.approx(0.6)
    assert c["grade"] == "unreliable" and "60% of the scores undefined" in c["reasons"]
    assert set(c["degenerate_explainers"].split(", ")) == set(EXPLAINERS)
    # the maps are degenerate: the explainers are not ranked under any metric of the model
    other = card(result, "DinoV2", CONSISTENT)
    assert other["explainers"] == 0 and other["grade"] == "questionable"
    assert other["reasons"].startswith("0 explainer(s) ranked")
    assert "| DinoV2 | softmax | Insertion | 0 | n/a |" in grades.markdown_section(result)


def test_activations_are_never_pooled(table):
    frame = stats.open_scores(table).frame("SELECT * FROM scores")
    frame = frame[(frame["model"] == "ResNet50") & (frame["metric"] == CONSISTENT)]
    reversed_ = frame.assign(activation="logits", score=-frame["score"])
    both = stats.reliability(pd.concat([frame, reversed_]), n_splits=50)
    assert sorted(both.cards["activation"]) == ["logits", "softmax"]
    soft = card(both, "ResNet50", CONSISTENT)
    logits = card(both, "ResNet50", CONSISTENT, "logits")
    assert soft["n"] == logits["n"] == N  # each image counted once per activation
    assert soft["separates_random"] is True and logits["separates_random"] is False
    one = stats.reliability(pd.concat([frame, reversed_]), activation="logits", n_splits=50)
    assert list(one.cards["activation"]) == ["logits"]


# --- each statistic against its library --------------------------------------------------

def test_alpha_equals_the_krippendorff_package():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(25, 7)) + np.arange(7) * 0.4 + rng.normal(size=(25, 1))
    expected = krippendorff.alpha(reliability_data=values, level_of_measurement="interval")
    assert consistency.krippendorff_interval(values) == pytest.approx(expected, rel=1e-12)
    centred = values - values.mean(axis=1, keepdims=True)
    alpha, raw = consistency.agreement(values)
    assert alpha == pytest.approx(krippendorff.alpha(reliability_data=centred,
                                                     level_of_measurement="interval"))
    assert raw == pytest.approx(expected)


def test_icc_equals_pingouin():
    rng = np.random.default_rng(4)
    first = rng.normal(size=60)
    second = first + rng.normal(0, 0.6, 60) + 0.3
    long = pd.DataFrame({"target": np.r_[np.arange(60), np.arange(60)],
                         "rater": np.repeat([0, 1], 60), "score": np.r_[first, second]})
    icc = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score")
    expected = float(icc.set_index("Type").loc["ICC(A,1)", "ICC"])  # ICC2 before 0.6
    assert consistency.icc_agreement(first, second) == pytest.approx(expected, rel=1e-10)
    assert consistency.icc_agreement(first, first) == pytest.approx(1.0)


def test_wilson_equals_statsmodels():
    wins, n = np.array([0, 3, 50, 99, 100]), np.array([10, 10, 100, 100, 100])
    low, high = validity.wilson(wins, n)
    ref_low, ref_high = proportion_confint(wins, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-12)


def test_split_rho_equals_scipy_spearman_per_split():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(40, 6)) + np.linspace(0, 0.5, 6)
    halves = rng.integers(0, 2, (12, 40), dtype=np.bool_)
    weights = rng.standard_exponential((12, 40))
    plain = consistency.split_rho(values, halves)
    weighted = consistency.split_rho(values, halves, weights)
    for s, h in enumerate(halves):
        direct = st.spearmanr(values[h].mean(axis=0), values[~h].mean(axis=0)).statistic
        assert plain[s] == pytest.approx(direct, abs=1e-6)
        w = weights[s]
        direct = st.spearmanr(np.average(values[h], axis=0, weights=w[h]),
                              np.average(values[~h], axis=0, weights=w[~h])).statistic
        assert weighted[s] == pytest.approx(direct, abs=1e-6)


def test_split_half_equals_a_direct_computation():
    rng = np.random.default_rng(6)
    values = rng.normal(size=(60, 5)) + np.linspace(0, 0.3, 5)
    estimate, low, high = consistency.split_half(values, n_splits=30, seed=11)
    draw = np.random.default_rng(11)
    halves = draw.integers(0, 2, (30, 60), dtype=np.bool_)
    rho = np.mean([st.spearmanr(values[h].mean(axis=0), values[~h].mean(axis=0)).statistic
                   for h in halves])
    assert estimate == pytest.approx(2 * rho / (1 + rho), abs=1e-6)
    assert low <= high
    assert consistency.spearman_brown(0.5) == pytest.approx(2 / 3)
    assert math.isnan(consistency.split_half(values[:3])[0])  # too few images


def test_stochastic_is_the_catalog_truth():
    from dina_datasets.metrics import metric_class

    for name, spec in catalog.METRICS.items():
        takes_seed = "seed" in inspect.signature(metric_class(name)).parameters
        assert spec.stochastic == takes_seed, name
        assert grades.stochastic(name) == spec.stochastic


def test_grade_rules():
    base = {"n": 1000, "explainers": 5, "split_half": 0.95, "split_half_low": 0.9,
            "degenerate_share": 0.0, "separates_random": True, "planted": grades.NOT_RUN,
            "retest_icc": math.nan}
    assert grades.grade(base)[0] == "reliable"
    assert grades.grade({**base, "split_half_low": 0.6})[0] == "questionable"
    assert grades.grade({**base, "split_half_low": -0.2})[0] == "unreliable"
    assert grades.grade({**base, "split_half": 0.4})[0] == "unreliable"
    assert grades.grade({**base, "retest_icc": 0.6})[0] == "questionable"
    assert grades.grade({**base, "retest_icc": 0.3})[0] == "unreliable"
    assert grades.grade({**base, "planted": "WRONG: ideal not above shifted on 3 of 8"}
                        )[0] == "unreliable"
    assert grades.grade({**base, "degenerate_share": 0.2})[0] == "questionable"
    assert grades.grade({**base, "n": 3})[0] == "questionable"


# --- the command -------------------------------------------------------------------------

def test_cli_json(table, capsys):
    assert main(["reliability", "--scores", table, "--json", "--splits", "50"]) == 0
    document = json.loads(capsys.readouterr().out)
    keys = {"model", "activation", "metric", "n", "split_half", "split_half_low",
            "split_half_high", "alpha", "grade"}
    assert len(document["cards"]) == 5
    assert all(keys <= set(r) for r in document["cards"])
    got = {(r["model"], r["metric"]): r["grade"] for r in document["cards"]}
    assert got["ResNet50", CONSISTENT] == "reliable"
    assert got["ResNet50", NOISE] == "unreliable"
    assert document["validity"] and {"share_low", "share_high"} <= set(document["validity"][0])


def test_cli_writes_the_card(table, tmp_path, capsys):
    from PIL import Image

    out = str(tmp_path / "card")
    assert main(["reliability", "--scores", table, "--out", out, "--splits", "50"]) == 0
    assert "reliable" in capsys.readouterr().out
    written = pd.read_csv(f"{out}/reliability.csv")
    assert list(written.columns) == grades.CARD_COLUMNS and len(written) == 5
    with open(f"{out}/reliability.md") as handle:
        assert handle.read().startswith("## Metric reliability")
    with Image.open(f"{out}/reliability.png") as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    green = (pixels[..., 1] > 150) & (pixels[..., 0] < 120) & (pixels[..., 2] < 120)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert green.sum() > 500 and red.sum() > 500  # reliable and unreliable cells
    # a user's file of another kind is not replaced; the command's own outputs are
    user = tmp_path / "mine"
    user.mkdir()
    (user / "reliability.csv").write_text("my notes\n")
    assert main(["reliability", "--scores", table, "--out", str(user)]) == 2
    assert (user / "reliability.csv").read_text() == "my notes\n"
    assert "refusing to replace" in capsys.readouterr().err
    assert main(["reliability", "--scores", table, "--out", out, "--splits", "20"]) == 0


def test_cli_bad_input(table, tmp_path, capsys):
    assert main(["reliability", "--scores", table, "--splits", "0"]) == 2
    assert "--splits" in capsys.readouterr().err
    assert main(["reliability", "--scores", table, "--retest", "3"]) == 2
    assert "--data-url" in capsys.readouterr().err
    # --configs chooses score files: with a built table it would be silently ignored
    assert main(["reliability", "--scores", table, "--configs", "ResNet50-*", "--json"]) == 2
    assert "--filter model=M" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="confidence"):
        stats.reliability(table, confidence=1.5)


# --- with a model: the planted check and the test-retest ---------------------------------

@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_planted_validity(tf, table):
    from dina_datasets.demo import planted
    from dina_datasets.demo.validity import planted_validity

    quick = {"Insertion": {"nb_steps": 20}, "Deletion": {"nb_steps": 20},
             "MuFidelity": {"nb_samples": 40}}
    try:
        frame = planted_validity(("Insertion", "Deletion", "MuFidelity", "Complexity",
                                  "RandomLogitMetric"), images=12, metric_params=quick)
    finally:
        catalog.unregister(planted.NAME)
    assert set(frame["metric"]) == {"Insertion", "Deletion", "MuFidelity", "Complexity"}
    fidelity = frame[frame["metric"] != "Complexity"]
    assert set(fidelity["against"]) == {"RandomExp", "reversed", "shifted"}
    assert frame["all_right"].all() and (frame["right"] == 12).all()
    # the card reads it: right on every image; a wrong answer makes the metric unreliable
    rows = stats.open_scores(table).frame("SELECT * FROM scores")
    rows = rows[(rows["model"] == "ResNet50") & (rows["metric"] == CONSISTENT)].assign(
        model=planted.NAME)
    good = stats.reliability(rows, planted=frame, n_splits=20)
    assert card(good, planted.NAME, CONSISTENT)["planted"] == "right on every image (12)"
    assert card(good, planted.NAME, CONSISTENT)["grade"] == "reliable"
    broken = frame.copy()
    broken.loc[broken["metric"] == CONSISTENT, ["right", "all_right"]] = [5, False]
    bad = card(stats.reliability(rows, planted=broken, n_splits=20), planted.NAME, CONSISTENT)
    assert bad["planted"].startswith("WRONG") and bad["grade"] == "unreliable"


def test_retest_of_a_stochastic_metric(tf, tmp_path, capsys):
    from PIL import Image

    from dina_datasets.generation.pipeline import generate
    from dina_datasets.metrics.evaluation import evaluate
    from dina_datasets.metrics.retest import retest

    def toy(weights="none"):
        inputs = tf.keras.Input((16, 16, 3))
        x = tf.keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        return tf.keras.Model(inputs, tf.keras.layers.Dense(6, activation="softmax")(x))

    rng = np.random.default_rng(3)
    for i in range(6):
        folder = tmp_path / "images" / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            folder / f"im_{i}.png")
    catalog.register_model("RetestToy", toy, input_size=16, replace=True)
    try:
        root = str(tmp_path / "bucket")
        generate("RetestToy", "Saliency", str(tmp_path / "images"), root, weights="none",
                 batch_size=3, write_preprocess=True, progress=False)
        evaluate("RetestToy", "Saliency", ["MuFidelity", "Insertion"], data_url=root,
                 weights="none", batch_size=3, seed=42, progress=False,
                 metric_params={"MuFidelity": {"nb_samples": 30},
                                "Insertion": {"nb_steps": 10}})
        path = str(tmp_path / "scores.parquet")
        scores.build(root, path)
        quick = {"MuFidelity": {"nb_samples": 30}}
        same = retest(root, path, images=4, seed=42, weights="none", metric_params=quick)
        other = retest(root, path, images=4, seed=7, weights="none", metric_params=quick)
        # the command: `--retest N` with the data (the published 200 samples this time)
        capsys.readouterr()
        assert main(["reliability", "--data-url", root, "--retest", "3", "--weights", "none",
                     "--splits", "10", "--json"]) == 0
        cards = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["cards"]}
        # no preprocess file: the images themselves (`--images`), as `dina evaluate` takes
        os.remove(Layout(root).preprocess("RetestToy"))
        assert main(["reliability", "--data-url", root, "--retest", "3", "--weights", "none",
                     "--splits", "10", "--json", "--images", str(tmp_path / "images")]) == 0
        by_images = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["cards"]}
    finally:
        catalog.unregister("RetestToy")
    assert by_images["MuFidelity"]["retest"] == cards["MuFidelity"]["retest"]
    assert list(same["metric"]) == ["MuFidelity"]  # Insertion is deterministic: not re-run
    assert same["n"].iloc[0] == 4
    assert same["icc"].iloc[0] == pytest.approx(1.0)  # the same seed repeats the scores
    assert other["n"].iloc[0] == 4 and other["icc"].iloc[0] < 0.999
    frame = stats.open_scores(path).frame("SELECT * FROM scores")
    result = stats.reliability(frame, retest=other, n_splits=10)
    mu = card(result, "RetestToy", "MuFidelity")
    assert mu["retest"].startswith("ICC") and mu["retest_icc"] == other["icc"].iloc[0]
    assert card(result, "RetestToy", "Insertion")["retest"] == grades.DETERMINISTIC
    assert cards["MuFidelity"]["retest"].startswith("ICC") and cards["MuFidelity"][
        "retest"].endswith("on 3 scores")
    assert cards["Insertion"]["retest"] == grades.DETERMINISTIC


def test_separation_is_asked_of_all_explainers_at_once():
    # one of ten explainers beats RandomExp on 61 of 100 images: alone, its Wilson bound is
    # above 1/2; asked of ten at once (Bonferroni), it is not evidence
    rows = [["M", "Insertion", f"E{i}", "RandomExp", 100, 61 if i == 0 else 50, 0, 0, 0, False]
            for i in range(10)]
    low, _ = validity.wilson(61, 100)
    assert low > 0.5
    assert validity.separates(rows) is False
    assert validity.separates(rows[:1]) is True
    assert validity.separates([["M", "Insertion", "E", "Sobel", 100, 90, 0, 0, 0, True]]) is None


def test_labels_and_matrix_for_the_leaderboard_and_explorer(result):
    labels = grades.grade_labels(result.cards)
    assert labels["ResNet50", CONSISTENT] == "reliable"
    assert labels["ResNet50", NOISE] == "unreliable"
    by_metric = grades.metric_labels(result.cards)
    assert by_metric[NOISE] == "unreliable"  # one model, one grade
    assert by_metric[CONSISTENT] == "questionable on 1 of 2 models"  # DinoV2: none ranked
    wide = grades.card_matrix(result.cards)
    assert list(wide.columns) == ["DinoV2", "ResNet50"]  # catalog order
    assert list(wide.index) == [CONSISTENT, NOISE, NO_BETTER, "Complexity"]
    assert wide.loc["Complexity", "ResNet50"] == "" and wide.loc[NOISE, "ResNet50"] == \
        "unreliable"


def test_report_has_the_reliability_section(table, tmp_path):
    from dina_datasets.analysis.report import write_report
    from dina_datasets.demo.validity import planted_if_present

    assert planted_if_present(table) is None  # no Planted configs: no model is run

    made = write_report(table, str(tmp_path / "report"), n_boot=20, sizes=(50,),
                        stability_boot=5)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Metric reliability" in text
    assert "![reliability card](figures/reliability.png)" in text
    assert "| ResNet50 | softmax | Deletion |" in text and "**unreliable**" in text
    cards = pd.read_csv(tmp_path / "report" / "tables" / "reliability.csv")
    assert len(cards) == len(made.frames["reliability"]) == 5
    assert (tmp_path / "report" / "figures" / "reliability.png").stat().st_size > 1000


def test_leaderboard_prints_the_grade_beside_the_metric(table):
    from dina_datasets.analysis import leaderboard

    board = leaderboard.collect(scores=table)  # what `dina leaderboard` prints
    text = board.text()
    assert "Deletion (↓) [unreliable]" in text
    assert "Insertion (↑) [questionable on 1 of 2 models]" in text  # DinoV2: none ranked
    assert "[grade] beside a metric" in text
    assert "Deletion (↓) [unreliable]" in board.markdown()
    plain = leaderboard.from_table(table).text()  # the explorer's: no grades, instant
    assert "Deletion (↓)" in plain and "[unreliable]" not in plain


def test_degenerate_maps_from_the_map_check(table):
    # the sanity floor's map check (sampled maps): Lime's maps near zero on ResNet50 (not
    # ranked), and on DinoV2 most sampled maps degenerate (the metric cannot be read there)
    maps = pd.DataFrame({"model": ["ResNet50", "ResNet50", "DinoV2"],
                         "explainer": ["Lime", "Rise", "Saliency"], "sampled": [8, 8, 8],
                         "degenerate_maps": [8, 0, 8]})
    result = stats.reliability(table, maps=maps, n_splits=20)
    c = card(result, "ResNet50", CONSISTENT)
    assert "Lime" in c["degenerate_explainers"] and c["explainers"] == len(EXPLAINERS) - 1
    assert c["degenerate_maps_share"] == pytest.approx(0.5)
    assert c["grade"] == "unreliable" and "50% of the sampled maps degenerate" in c["reasons"]
    assert not (result.validity["explainer"] == "Lime").any()
    assert math.isnan(card(stats.reliability(table, n_splits=20), "ResNet50", CONSISTENT)[
        "degenerate_maps_share"])


def test_split_half_sees_small_differences_on_a_large_offset():
    # Complexity-like scores: ~10 on every image, explainers 1e-4 apart, noise 1e-6: the
    # ranking repeats exactly (float32 products on the raw scores would lose it)
    rng = np.random.default_rng(8)
    values = 1e4 + np.arange(6) * 1e-4 + rng.normal(0, 1e-6, (2000, 6))
    estimate, low, _ = consistency.split_half(values, n_splits=20)
    assert estimate == pytest.approx(1.0) and low == pytest.approx(1.0)


def _frame(cells: dict, activation: str = "softmax") -> pd.DataFrame:
    """A scores table (the columns of `dina scores`) of {(model, explainer, metric): scores}."""
    rows = [(model, explainer, metric, activation, i, f"img_{i:03d}", 1, 1, float(v))
            for (model, explainer, metric), values in cells.items()
            for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["model", "explainer", "metric", "activation", "index",
                                       "image_id", "label", "prediction", "score"])


def test_a_metric_that_ties_every_explainer_says_so_not_too_few_images():
    """Every explainer scored alike on 40 images: the split-half is undefined because the
    metric ranks nothing, not because 40 images are too few (the reason said so before)."""
    cells = {("ResNet50", e, "Insertion"): np.full(40, 0.3)
             for e in ("Saliency", "GradCAM", "RandomExp")}
    c = stats.reliability(_frame(cells), n_splits=20).cards.iloc[0]
    assert c["n"] == 40 and not math.isfinite(c["split_half"])
    assert c["grade"] == "questionable"
    assert "too few images" not in c["reasons"]
    assert "tie on every half of the 40 images" in c["reasons"]


def test_an_activation_not_in_the_table_names_the_ones_that_are(tmp_path):
    cells = {("ResNet50", e, "Insertion"): np.arange(10.0) + j
             for j, e in enumerate(("Saliency", "RandomExp"))}
    path = str(tmp_path / "scores.parquet")
    pd.concat([_frame(cells), _frame(cells, "logits")]).to_parquet(path)
    with pytest.raises(ConfigError, match="logit.*activations: logits, softmax"):
        stats.reliability(path, activation="logit")


def test_beats_control_in_the_table_agrees_with_the_card():
    """Saliency beats RandomExp on 170 of 300 images: its 95 % Wilson bound alone is above
    1/2, not at the Bonferroni level over the three explainers that the card's separation
    uses; the validity table said `beats_control` while the card said "does not separate"."""
    n, wins = 300, 170
    values = np.column_stack([np.where(np.arange(n) < wins, 1.0, -1.0), -np.ones(n),
                              -np.ones(n), np.zeros(n)])
    rows = validity.against_controls(values, ["Saliency", "GradCAM", "Rise", "RandomExp"],
                                     "Insertion", "ResNet50")
    assert validity.wilson(wins, n)[0] > 0.5  # alone it would be evidence
    assert validity.separates(rows) is False
    assert [r[9] for r in rows] == [False, False, False]
    low, high = validity.wilson(wins, n, 1 - 0.05 / 3)
    assert (rows[0][7], rows[0][8]) == pytest.approx((low, high))
    # and one explainer alone: the plain 95 % interval, and both say it separates
    alone = validity.against_controls(values[:, [0, 3]], ["Saliency", "RandomExp"],
                                      "Insertion", "ResNet50")
    assert alone[0][9] is True and validity.separates(alone) is True


def test_too_few_images_or_explainers_to_tell_are_never_reliable():
    """A perfectly consistent ordering on 6 images, or of only 2 explainers on 300, says
    nothing yet: no paired verdict can reach alpha 0.01 on 6 images (the leaderboard says
    "too few images to tell"), and 2 explainers' split-half is +1 or -1 by construction."""
    rng = np.random.default_rng(2)
    few = {("ResNet50", e, "Insertion"): k + rng.normal(0, 0.01, 6)
           for k, e in enumerate(("Saliency", "GradCAM", "Rise", "RandomExp"))}
    two = {("ResNet50", e, "Insertion"): k + rng.normal(0, 0.01, 300)
           for k, e in enumerate(("Saliency", "RandomExp"))}
    for cells, why in ((few, "too few images"), (two, "at least 3 are needed")):
        c = stats.reliability(_frame(cells), n_splits=20).cards.iloc[0]
        assert c["grade"] == "questionable" and why in c["reasons"], c["reasons"]
