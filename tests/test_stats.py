"""`dina_datasets.stats`: each statistic checked against its library on the same inputs, and
on a planted bucket written here: Saliency = Rise + a known paired shift (better, p_adjusted
< 0.001), Lime = Rise + tiny noise (equivalent), RandomExp = Rise + tiny noise
(Rise and Lime equivalent to random maps), GradCAM with all-zero maps on ResNet50
(degenerate: never ranked, though its Insertion mean is the highest)."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from dina_datasets import Layout, stats, write_explanations
from dina_datasets.analysis import scores
from dina_datasets.analysis.stats.summaries import bootstrap_ci
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError, FormatError, LayoutError
from dina_datasets.formats import write_scores

N = 40
MODELS = ("ResNet50", "DinoV2", "ConvNeXtV2")
SHIFT = 0.3


def planted_values(model_index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + model_index)
    base = rng.uniform(0, 1, N)
    return {"Saliency": base + SHIFT + rng.normal(0, 0.01, N),
            "Rise": base,
            "Lime": base + rng.normal(0, 1e-6, N),
            "RandomExp": base + rng.normal(0, 1e-6, N)}


def write_planted(root: str) -> dict[tuple[str, str, str], np.ndarray]:
    """Insertion (higher is better) and Complexity (lower is better) score files."""
    layout, written = Layout(root), {}
    for k, model in enumerate(MODELS):
        cells = planted_values(k)
        if model == "ResNet50":  # degenerate maps: Complexity undefined, Insertion "best"
            cells["GradCAM"] = np.full(N, np.nan)
        for explainer, values in cells.items():
            for metric in ("Insertion", "Complexity"):
                got = cells["Rise"] + 1.0 if (explainer, metric) == ("GradCAM", "Insertion") \
                    else values
                write_scores(layout.scores(model, explainer, metric), got)
                written[model, explainer, metric] = got
    return written


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("planted")
    written = write_planted(str(base / "bucket"))
    path = str(base / "scores.parquet")
    scores.build(str(base / "bucket"), path)
    summary = stats.summary(path, n_boot=300, seed=3)
    pairs = stats.pairs(path, summary=summary)
    return path, written, summary, pairs


def row(frame, **where):
    hit = frame
    for key, value in where.items():
        hit = hit[hit[key] == value]
    assert len(hit) == 1, where
    return hit.iloc[0]


def test_planted_verdicts(planted):
    _, _, _, pairs = planted
    for model in MODELS:
        a_b = row(pairs, model=model, metric="Insertion", a="Saliency", b="Rise")
        assert a_b["verdict"] == "better" and a_b["p_adjusted"] < 0.001
        assert a_b["effect"] == 1.0 and a_b["median_diff"] == pytest.approx(SHIFT, abs=0.02)
        # lower is better for Complexity: the same shift makes Saliency worse
        assert row(pairs, model=model, metric="Complexity", a="Saliency",
                   b="Rise")["verdict"] == "worse"
        for metric in ("Insertion", "Complexity"):
            b_c = row(pairs, model=model, metric=metric, a="Rise", b="Lime")
            # 1e-6 apart: the TOST shows the difference inside the margin
            assert b_c["verdict"] == "equivalent" and b_c["p_adjusted"] > 0.01
            assert b_c["p_equivalence_adjusted"] < 1e-6
            random = row(pairs, model=model, metric=metric, a="Lime", b="RandomExp")
            assert random["random_like"] and random["verdict"] == "equivalent"
            assert not row(pairs, model=model, metric=metric, a="Saliency",
                           b="RandomExp")["random_like"]
    assert "GradCAM" not in set(pairs["a"]) | set(pairs["b"])  # degenerate: not compared
    assert len(pairs) == len(MODELS) * 2 * 6  # 4 explainers -> 6 pairs per model and metric


def test_pairs_equal_the_libraries(planted):
    _, written, _, pairs = planted
    model, metric = "DinoV2", "Insertion"
    names = ["Saliency", "Rise", "Lime", "RandomExp"]
    got = pairs[(pairs["model"] == model) & (pairs["metric"] == metric)]
    raw = [st.wilcoxon(written[model, a, metric], written[model, b, metric]).pvalue
           for a, b in zip(got["a"], got["b"], strict=True)]
    np.testing.assert_allclose(got["p_value"], raw, rtol=1e-12)
    np.testing.assert_allclose(got["p_adjusted"], multipletests(raw, method="holm")[1],
                               rtol=1e-12)
    for r in got.itertuples():
        a, b = written[model, r.a, metric], written[model, r.b, metric]
        assert r.statistic == st.wilcoxon(a, b).statistic
        # rank-biserial from scipy's R+ (the one-sided statistic): r = 2 R+ / T - 1
        plus = st.wilcoxon(a, b, alternative="greater").statistic
        assert r.effect == pytest.approx(2 * plus / (N * (N + 1) / 2) - 1, abs=1e-12)
        assert r.median_diff == pytest.approx(np.median(a - b))
        assert r.n == N and {r.a, r.b} <= set(names)


def test_rank_biserial_with_ties_and_zeros_equals_scipys_signed_ranks():
    from dina_datasets.analysis.stats.comparisons import rank_biserial

    rng = np.random.default_rng(3)
    for decimals in (0, 1, 2, None):  # rounded: many ties and zero differences
        d = rng.normal(0.3, 1, 400)
        d = d if decimals is None else np.round(d, decimals)
        nonzero = int((d != 0).sum())
        plus = st.wilcoxon(d, alternative="greater").statistic  # R+, zeros dropped
        total = nonzero * (nonzero + 1) / 2
        assert rank_biserial(d) == pytest.approx(2 * plus / total - 1, abs=1e-12)
    assert math.isnan(rank_biserial(np.zeros(5)))


def test_summary_equals_the_libraries(planted):
    path, written, summary, _ = planted
    for (model, explainer, metric), values in written.items():
        got = row(summary, model=model, explainer=explainer, metric=metric)
        finite = values[np.isfinite(values)]
        assert got["n"] == len(finite) and got["n_undefined"] == N - len(finite)
        if len(finite):
            assert got["mean"] == pytest.approx(finite.mean(), rel=1e-12)
            assert got["median"] == pytest.approx(np.median(finite), rel=1e-12)
            assert got["std"] == pytest.approx(finite.std(ddof=1), rel=1e-9)
    # the bootstrap interval is scipy's, explainers resampled on the same images: one row
    # alone, with the same seed, gives the same interval
    model, metric = "DinoV2", "Insertion"
    alone = st.bootstrap((written[model, "Rise", metric],), np.mean, n_resamples=300,
                         method="percentile", rng=np.random.default_rng(3))
    got = row(summary, model=model, explainer="Rise", metric=metric)
    assert got["ci_low"] == pytest.approx(alone.confidence_interval.low, rel=1e-12)
    assert got["ci_high"] == pytest.approx(alone.confidence_interval.high, rel=1e-12)
    # normal intervals: mean ± z s / sqrt(n)
    normal = stats.summary(path, ci="normal")
    got = row(normal, model=model, explainer="Rise", metric=metric)
    half = st.norm.ppf(0.975) * got["std"] / math.sqrt(N)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((got["mean"] - half,
                                                             got["mean"] + half))


def test_bootstrap_with_missing_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 30))
    values[1, :10] = np.nan  # the second explainer lacks 10 images
    low, high = bootstrap_ci(values, n_boot=200, seed=1)
    assert np.all(low < np.nanmean(values, axis=1)) and np.all(np.nanmean(values, 1) < high)
    assert np.isnan(bootstrap_ci(values[:, :1])[0]).all()  # one image: no interval


def test_ranks_and_the_sanity_floor(planted):
    _, _, summary, _ = planted
    for model in MODELS:
        insertion = summary[(summary["model"] == model) & (summary["metric"] == "Insertion")]
        assert row(insertion, explainer="Saliency")["rank"] == 1
        complexity = summary[(summary["model"] == model) & (summary["metric"] == "Complexity")]
        assert row(complexity, explainer="Saliency")["rank"] == 4
    gradcam = summary[summary["explainer"] == "GradCAM"]
    assert len(gradcam) == 2 and gradcam["degenerate"].all() and gradcam["rank"].isna().all()
    insertion = row(gradcam, metric="Insertion")
    # its Insertion mean is the best of ResNet50, yet the maps are degenerate: not crowned
    others = summary[(summary["model"] == "ResNet50") & (summary["metric"] == "Insertion")
                     & (summary["explainer"] != "GradCAM")]
    assert insertion["mean"] > others["mean"].max()
    assert insertion["reason"] == "degenerate maps (Complexity undefined for 100%)"
    assert row(gradcam, metric="Complexity")["reason"] == ("100% of its Complexity scores "
                                                           "undefined")
    flags = stats.degenerate(planted[0])
    assert set(flags.loc[flags["degenerate"], "explainer"]) == {"GradCAM"}
    # below the threshold: not flagged
    mixed = pd.DataFrame({"model": "ResNet50", "explainer": "Rise", "metric": "Complexity",
                          "activation": "softmax", "index": range(10), "image_id": "",
                          "label": -1, "prediction": -1,
                          "score": [np.nan] * 4 + list(range(6))})
    assert not stats.degenerate(mixed)["degenerate"].any()
    assert stats.degenerate(mixed, threshold=0.4)["degenerate"].all()


def test_annotate_vs_next_and_random(planted):
    _, _, summary, pairs = planted
    annotated = stats.annotate(summary, pairs)
    top = row(annotated, model="DinoV2", metric="Insertion", explainer="Saliency")
    assert top["vs_next"] == "better" and top["vs_random"] == "better"
    for explainer in ("Rise", "Lime"):
        assert row(annotated, model="DinoV2", metric="Insertion",
                   explainer=explainer)["vs_random"] == "equivalent"
    assert pd.isna(row(annotated, model="DinoV2", metric="Insertion",
                       explainer="RandomExp")["vs_random"])


def test_friedman_nemenyi_and_cd_equal_the_libraries(planted):
    _, _, summary, _ = planted
    table = stats.friedman(summary)
    got = row(table, metric="Insertion")
    assert got["models"] == 3 and got["explainers"] == 4 and got["dropped"] == "GradCAM"
    blocks = summary[(summary["metric"] == "Insertion") & (summary["explainer"] != "GradCAM")
                     ].pivot(index="model", columns="explainer", values="mean")
    expected = st.friedmanchisquare(*[blocks[c].to_numpy() for c in blocks.columns])
    assert got["statistic"] == pytest.approx(expected.statistic)
    assert got["p_value"] == pytest.approx(expected.pvalue)
    # Demšar (2006), table 5(a): q_0.05 = 2.569 for k = 4 -> CD = 2.569 sqrt(4 * 5 / (6 * 3))
    assert got["cd"] == pytest.approx(2.569 * math.sqrt(20 / 18), abs=1e-3)
    assert stats.critical_difference(10, 14) == pytest.approx(3.164 * math.sqrt(110 / 84),
                                                               abs=1e-3)
    nemenyi = stats.nemenyi(summary, "Insertion")
    reference = sp.posthoc_nemenyi_friedman(blocks[list(nemenyi.columns)].to_numpy())
    np.testing.assert_allclose(nemenyi.to_numpy(), reference.to_numpy())
    ranks = stats.average_ranks(summary)
    # Saliency is best on every model under Insertion, worst under Complexity
    assert row(ranks, metric="Insertion", explainer="Saliency")["average_rank"] == 1.0
    assert row(ranks, metric="Complexity", explainer="Saliency")["average_rank"] == 4.0
    # a path works as well as a summary
    assert stats.friedman(planted[0])["metric"].tolist() == ["Insertion", "Complexity"]


def test_agreement_equals_kendalltau(planted):
    _, _, summary, _ = planted
    metrics = stats.metric_agreement(summary)
    # Insertion (higher is better) and Complexity (lower) hold the same values: once
    # oriented, their rankings are reversed
    for model in MODELS:
        got = row(metrics, model=model, metric_a="Insertion", metric_b="Complexity")
        ins = summary[(summary["model"] == model) & (summary["metric"] == "Insertion")
                      & ~summary["degenerate"]].set_index("explainer")["mean"]
        com = summary[(summary["model"] == model) & (summary["metric"] == "Complexity")
                      & ~summary["degenerate"]].set_index("explainer")["mean"]
        expected = st.kendalltau(ins.sort_index(), -com.sort_index())
        assert got["tau"] == pytest.approx(expected.statistic) and got["n"] == 4
        assert got["tau"] == pytest.approx(-1.0)
    models = stats.model_agreement(summary)
    got = row(models, metric="Insertion", model_a="DinoV2", model_b="ResNet50")
    a = summary[(summary["model"] == "ResNet50") & (summary["metric"] == "Insertion")
                & ~summary["degenerate"]].set_index("explainer")["mean"].sort_index()
    b = summary[(summary["model"] == "DinoV2") & (summary["metric"] == "Insertion")
                ].set_index("explainer")["mean"].sort_index()
    assert got["tau"] == pytest.approx(st.kendalltau(a, b).statistic)
    matrix = stats.matrix(metrics, "metric_a", "metric_b")
    assert matrix.loc["Insertion", "Complexity"] == pytest.approx(-1.0)
    assert matrix.loc["Complexity", "Complexity"] == 1.0


def frame(values: dict[str, np.ndarray], model="ResNet50", metric="Insertion"):
    return pd.concat([pd.DataFrame({"model": model, "explainer": e, "metric": metric,
                                    "activation": "softmax", "index": np.arange(len(v)),
                                    "image_id": "", "label": -1, "prediction": -1,
                                    "score": v}) for e, v in values.items()])


def test_stability():
    rng = np.random.default_rng(7)
    base = rng.normal(size=400)
    apart = frame({"Saliency": base + 3, "Rise": base, "Lime": base - 3})
    got = stats.stability(apart, sizes=(10, 100, 1000), n_boot=30)
    assert got["n"].tolist() == [10, 100, 400]  # 1000 > 400 images: the full size instead
    assert (got["share_equal"] == 1).all() and (got["tau_mean"] == 1).all()
    assert (got["images"] == 400).all() and (got["explainers"] == 3).all()
    # two explainers drawn from the same distribution: rankings flip, more at small n
    close = frame({"Saliency": rng.normal(size=400), "Rise": rng.normal(size=400),
                   "Lime": rng.normal(size=400) - 3})
    got = stats.stability(close, sizes=(10,), n_boot=200, seed=1)
    small = row(got, n=10)
    assert 0 < small["share_equal"] < 1 and small["tau_low"] < small["tau_mean"] < 1
    with pytest.raises(ConfigError, match="positive"):
        stats.stability(close, n_boot=0)


def test_inputs_path_relation_frame_agree(planted):
    path = planted[0]
    by_path = stats.summary(path, ci="normal")
    con = duckdb.connect()
    by_relation = stats.summary(con.read_parquet(path), ci="normal")
    by_frame = stats.summary(pd.read_parquet(path), ci="normal")
    for other in (by_relation, by_frame):
        pd.testing.assert_frame_equal(by_path, other)


def test_filters(planted, tmp_path):
    path = planted[0]
    one = stats.summary(path, ci="normal", filters=["index=0,1,2", "model=DinoV2"])
    assert set(one["model"]) == {"DinoV2"} and (one["n"] == 3).all()
    # labels 0..3; the model is right on every 4th image only
    table = pd.read_parquet(path).assign(
        label=lambda f: f["index"] % 4,
        prediction=lambda f: np.where(f["index"] % 4 == 0, 0, (f["index"] % 4 + 1) % 4))
    correct = stats.summary(table, ci="normal", filters=["correct"])
    assert (correct["n"] + correct["n_undefined"] == N // 4).all()
    wrong = stats.summary(table, ci="normal", filters=["wrong"])
    assert (wrong["n"] + wrong["n_undefined"] == N - N // 4).all()
    classes = stats.summary(table, ci="normal", filters=["class=1,2"])
    assert (classes["n"] + classes["n_undefined"] == N // 2).all()
    with pytest.raises(ConfigError, match="no scores left .* need a table built with keys"):
        stats.summary(path, filters=["correct"])
    with pytest.raises(ConfigError, match="unknown filter 'colour=red'; valid: correct"):
        stats.summary(path, filters=["colour=red"])
    with pytest.raises(ConfigError, match="takes integers"):
        stats.summary(path, filters=["class=cat"])
    with pytest.raises(LayoutError, match="no scores table at"):
        stats.summary(str(tmp_path / "nope.parquet"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(FormatError, match="is not a Parquet scores table"):
        stats.summary(str(tmp_path / "bad.parquet"))
    with pytest.raises(FormatError, match="lacks the columns"):
        stats.summary(pd.DataFrame({"model": ["x"]}))
    with pytest.raises(ConfigError, match="alpha must be between 0 and 1"):
        stats.pairs(path, alpha=2)


def test_zero_maps_are_never_crowned(tmp_path):
    """The demo's case: all-zero maps (ResNet50 GradCAM with random weights) scored by the
    real metric code: Complexity undefined, the explainer flagged, not ranked."""
    from dina_datasets.metrics.evaluation import evaluate

    root = str(tmp_path / "bucket")
    layout = Layout(root)
    rng = np.random.default_rng(0)
    write_explanations(layout.explanations("ResNet50", "GradCAM"),
                       np.zeros((6, 224, 224, 1), np.float32))
    write_explanations(layout.explanations("ResNet50", "Rise"),
                       rng.random((6, 224, 224, 1), np.float32))
    for explainer in ("GradCAM", "Rise"):
        evaluate("ResNet50", explainer, ["Complexity", "Sparseness"], data_url=root,
                 progress=False)
    with open(layout.scores("ResNet50", "GradCAM", "Complexity")) as handle:
        assert handle.read() == "[" + ", ".join(["null"] * 6) + "]"
    path = str(tmp_path / "scores.parquet")
    scores.build(root, path)
    summary = stats.summary(path, ci="normal")
    gradcam = summary[summary["explainer"] == "GradCAM"]
    assert gradcam["degenerate"].all() and gradcam["rank"].isna().all()
    assert (summary.loc[summary["explainer"] == "Rise", "rank"] == 1).all()


def test_report_tables_and_figures(planted, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    from PIL import Image

    out = tmp_path / "report"
    assert main(["report", "--scores", planted[0], "--out", str(out), "--filter",
                 "metric=Insertion", "--n-boot", "50", "--stability-sizes", "10,20",
                 "--stability-boot", "20"]) == 0
    assert "report.md" in capsys.readouterr().out
    for name in ("summary", "pairs", "leaders", "degenerate", "friedman", "average_ranks",
                 "agreement_metrics", "agreement_models", "stability"):
        assert (out / "tables" / f"{name}.csv").stat().st_size > 0, name
        assert (out / "tables" / f"{name}.md").read_text().startswith("| "), name
    leaders = pd.read_csv(out / "tables" / "leaders.csv")
    assert set(leaders["leader"]) == {"Saliency"} and set(leaders["vs_next"]) == {"better"}
    figures = {p.name for p in (out / "figures").iterdir()}
    stems = {"cd_Insertion", "agreement_models", "stability_Insertion", "reliability",
             *(f"distributions_{m}" for m in MODELS)}
    assert figures == {f"{s}.{ext}" for s in stems for ext in ("png", "svg")}
    for stem in stems:
        with Image.open(out / "figures" / f"{stem}.png") as image:
            assert image.format == "PNG" and min(image.size) > 200
            assert np.asarray(image.convert("L")).std() > 10  # not blank
        assert ET.parse(out / "figures" / f"{stem}.svg").getroot().tag.endswith("svg")
    text = (out / "report.md").read_text()
    for section in ("## Leaders per model and metric", "## Sanity floor", "How to read",
                    "## Across models", "## Agreement", "## Stability", "![figures/cd_Insertion"
                    ".png](figures/cd_Insertion.png)"):
        assert section in text, section
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    assert any(r[:3] == ["ResNet50", "Insertion", "GradCAM"] for r in rows)  # degenerate
    assert "Cost vs quality" not in text  # no cost records, no such section
    stability = pd.read_csv(out / "tables" / "stability.csv")
    assert sorted(set(stability["n"])) == [10, 20, N]


def test_report_cost_hook(planted, tmp_path):
    from dina_datasets.analysis.report import write_report

    cost = pd.DataFrame({"model": ["DinoV2"] * 3, "explainer": ["Saliency", "Rise", "Lime"],
                         "seconds_per_image": [0.01, 3.0, 9.0]})
    made = write_report(planted[0], str(tmp_path / "r"), filters=["model=DinoV2",
                                                                  "metric=Insertion"],
                        n_boot=20, sizes=(10,), stability_boot=10, cost=cost)
    quality = made.frames["cost_quality"]
    assert quality.set_index("explainer")["seconds_per_image"].to_dict() == {
        "Saliency": 0.01, "Rise": 3.0, "Lime": 9.0}
    assert (tmp_path / "r" / "figures" / "cost_Insertion.svg").exists()
    assert "## Cost vs quality" in (tmp_path / "r" / "report.md").read_text()
    with pytest.raises(ConfigError, match="missing seconds_per_image"):
        write_report(planted[0], str(tmp_path / "x"), cost=cost.drop(
            columns="seconds_per_image"))
    assert not (tmp_path / "x").exists()


def test_report_bad_input(tmp_path, capsys):
    assert main(["report", "--scores", str(tmp_path / "none.parquet"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no scores table at" in capsys.readouterr().err
    assert main(["report", "--data-url", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no folder at" in capsys.readouterr().err
    assert main(["report", "--data-url", str(tmp_path), "--n-boot", "0"]) == 2
    assert "--n-boot must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_holm_equals_statsmodels_with_ties_and_nan():
    from statsmodels.stats.multitest import multipletests

    from dina_datasets.analysis.stats.comparisons import holm

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 120):
        p = rng.random(n) ** 3
        p[: n // 3] = p[0]  # ties
        p[rng.random(n) < 0.2] = np.nan
        tested = np.isfinite(p)
        expected = np.full(n, np.nan)
        if tested.any():
            expected[tested] = multipletests(p[tested], method="holm")[1]
        np.testing.assert_allclose(holm(p), expected, rtol=1e-12)


@pytest.mark.parametrize("statistic", ["summary", "pairs", "stability", "degenerate"])
def test_a_statistic_never_pools_activations(statistic, tmp_path):
    """activation=None over softmax and logits rows: a clear error, not n doubled; each
    activation alone works."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [dict(model="ResNet50", explainer=e, metric="Deletion", activation=a, index=i,
                 image_id=f"img_{i}", label=-1, prediction=-1,
                 score=float(rng.random() + (0.5 if e == "Saliency" else 0)))
            for a in ("softmax", "logits") for e in ("Saliency", "RandomExp", "Rise")
            for i in range(30)]
    frame = pd.DataFrame(rows)
    path = str(tmp_path / "s.parquet")
    frame.to_parquet(path)
    function = getattr(stats, statistic)
    with pytest.raises(ConfigError, match="several output activations"):
        function(path, activation=None)
    for activation in ("softmax", "logits"):
        function(path, activation=activation)


def test_pairs_join_images_by_identity_when_record_orders_differ(tmp_path):
    """Two explainers scored on the same images written in different record orders: paired
    by image_id the strong difference is found (by position it would be noise)."""
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 300
    truth = rng.random(n)
    order = rng.permutation(n)  # the second cell's records, in another order
    ids = np.array([f"img_{i:04d}" for i in range(n)])
    base = dict(model="ResNet50", metric="Insertion", activation="softmax", label=-1,
                prediction=-1)
    a = pd.DataFrame({**base, "explainer": "Saliency", "index": np.arange(n),
                      "image_id": ids, "score": truth + 0.05})
    b = pd.DataFrame({**base, "explainer": "Rise", "index": np.arange(n),
                      "image_id": ids[order], "score": truth[order]})
    frame = pd.concat([a, b])
    got = stats.pairs(frame)
    row = got.iloc[0]
    assert row["paired_by"] == "image_id"
    assert row["p_adjusted"] < 1e-40 and row["verdict"] in ("better", "higher"), row
    # without ids the rows pair by position, and the pairing key says so
    keyless = stats.pairs(frame.assign(image_id=""))
    assert keyless.iloc[0]["paired_by"] == "index"
    assert keyless.iloc[0]["p_adjusted"] > 1e-6


def test_filter_values_are_bound_not_spliced_into_sql():
    """A value holding a quote (or SQL) is a value: it matches the rows that hold it and
    nothing else, and `Scores.frame` binds its parameters."""
    odd = "it's'); DROP TABLE x; --"
    values = {"Saliency": np.arange(6.0), "Rise": np.arange(6.0) + 1}
    table = frame(values).assign(image_id=[odd, "b", "c", "d", "e", "f"] * 2)
    got = stats.summary(table, ci="normal", filters=[f"image_id={odd}"])
    assert (got["n"] == 1).all() and sorted(got["mean"]) == [0.0, 1.0]
    view = stats.open_scores(table)
    assert view.frame("SELECT count(*) AS n FROM scores WHERE image_id = ?",
                      [odd])["n"].iloc[0] == 2
    assert view.frame("SELECT count(*) AS n FROM scores WHERE explainer = $e",
                      {"e": "Rise"})["n"].iloc[0] == 6


def test_verdicts_with_evidence_and_tost_equal_statsmodels():
    """A = B + shift: better; C = B + noise far inside the margin, n = 2,000: equivalent
    (shown by the TOST, not read from a failure to reject); D = B + noise, n = 6:
    inconclusive. The TOST p-values equal statsmodels' paired form."""
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(11)
    n = 2000
    b = rng.normal(0.5, 0.2, n)
    values = {"Saliency": b + 0.1 + rng.normal(0, 0.02, n), "Rise": b,
              "Lime": b + rng.normal(0, 0.002, n)}
    got = stats.pairs(frame(values))
    stds = [np.std(v, ddof=1) for v in values.values()]
    margin = 0.1 * np.sqrt(np.mean(np.square(stds)))  # a tenth of the pooled spread
    assert got["margin"].tolist() == pytest.approx([margin] * 3, rel=1e-9)
    for r in got.itertuples():
        expected = ttost_paired(values[r.a], values[r.b], -margin, margin)[0]
        assert r.p_equivalence == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert r.mean_diff == pytest.approx(np.mean(values[r.a] - values[r.b]))
    assert row(got, a="Saliency", b="Rise")["verdict"] == "better"
    c = row(got, a="Rise", b="Lime")
    assert c["verdict"] == "equivalent" and c["p_equivalence_adjusted"] < 1e-12
    assert c["p_adjusted"] > 0.01  # a failure to reject alone would say nothing
    # n = 6, noise of the margin's size: neither test can decide
    small = {"Rise": b[:6], "Lime": b[:6] + rng.normal(0, 0.02, 6)}
    d = stats.pairs(frame(small)).iloc[0]
    m6 = d["margin"]
    assert d["p_equivalence"] == pytest.approx(
        ttost_paired(small["Rise"], small["Lime"], -m6, m6)[0], rel=1e-9)
    assert d["p_equivalence"] > 0.01 and d["verdict"] == "inconclusive"
    # Holm over the pairs of one (model, metric), the equivalence tests as the others
    np.testing.assert_allclose(got["p_equivalence_adjusted"],
                               multipletests(got["p_equivalence"], method="holm")[1])
    with pytest.raises(ConfigError, match="equivalence margin must be a positive number"):
        stats.pairs(frame(values), margin=-1)
    # a margin in score units, far below the noise: C is no longer shown equivalent
    tight = stats.pairs(frame(values), margin=1e-6, margin_units="score")
    assert row(tight, a="Rise", b="Lime")["verdict"] == "inconclusive"


def test_four_images_are_too_few_to_tell(tmp_path):
    """The demo's case: 4 images cannot reach alpha 0.01 whatever they hold (the signed-rank
    test's smallest p-value is 0.125), so the report says "too few images to tell" instead
    of listing a clearly better explainer as "not better than RandomExp"."""
    from dina_datasets.analysis.report import write_report

    values = {"Saliency": np.array([0.10, 0.05, 0.08, 0.07]),
              "IntegratedGradients": np.array([0.12, 0.06, 0.09, 0.05]),
              "RandomExp": np.array([0.74, 0.70, 0.77, 0.73])}
    table = frame(values, metric="Deletion")
    pairs = stats.pairs(table)
    assert set(pairs["verdict"]) == {"inconclusive"} and not pairs["random_like"].any()
    power = stats.detectability(pairs, alpha=0.01)
    assert power["status"].tolist() == ["too few images to tell"]
    assert power["n_needed"].iloc[0] >= 10  # 2 / 2**n < 0.01 / 3 needs n >= 10
    made = write_report(table, str(tmp_path / "r"), n_boot=20, sizes=(2,), stability_boot=5,
                        figures=False)
    leaders = made.frames["leaders"]
    assert leaders["vs_next"].tolist() == ["too few images to tell"]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "too few images to tell" in text
    section = text.split("Equivalent to RandomExp (random maps), or worse")[1]
    assert section.split("##")[0].strip().endswith("None.")


def test_pairs_refuse_a_mix_of_ids_and_positions(tmp_path, capsys):
    """One cell with image ids, the other without (records in another order): pairing by
    position would compare different images, so the pair is refused with a message naming
    the cells and what to pass; the report states the pairing key it used."""
    from dina_datasets.analysis.report import write_report
    from dina_datasets.errors import AlignmentError

    rng = np.random.default_rng(5)
    n = 50
    ids = np.array([f"img_{i:03d}" for i in range(n)])
    values = {"Saliency": rng.random(n), "Rise": rng.random(n)}
    table = frame(values).assign(image_id=np.r_[ids, np.full(n, "")])
    with pytest.raises(AlignmentError, match=r"cannot pair the images of ResNet50 Insertion: "
                       r"Saliency has image ids; Rise has none\. .*--imagenet-json "
                       r"imagenet_data\.json.*`dina align`"):
        stats.pairs(table)
    path = str(tmp_path / "mixed.parquet")
    table.to_parquet(path)
    assert main(["leaderboard", "--scores", path, "--json"]) == 2
    assert "cannot pair the images of ResNet50 Insertion" in capsys.readouterr().err
    # ids on every row, some held twice: by index while the ids at each index agree (one
    # order), refused when they do not
    twice = np.r_[ids[:-1], ids[:1]]
    same = frame(values).assign(image_id=np.r_[twice, twice])
    assert stats.pairs(same)["paired_by"].tolist() == ["index"]
    shuffled = frame(values).assign(image_id=np.r_[twice, twice[::-1]])
    with pytest.raises(AlignmentError, match="holds an image id twice|hold an image id twice"):
        stats.pairs(shuffled)
    # the report says which key paired the images
    write_report(frame(values).assign(image_id=np.r_[ids, ids]), str(tmp_path / "r"),
                 n_boot=20, sizes=(10,), stability_boot=5, figures=False)
    assert "Pairing key: `image_id` for 1 (model, metric)." in (
        tmp_path / "r" / "report.md").read_text()


def test_the_report_crowns_no_explainer_of_a_tie_at_the_top(tmp_path):
    """Saliency and Rise tie at #1: the report named Saliency the leader, Rise the runner-up
    and printed Saliency's verdict over RandomExp as `vs_next`; now it names the tie, shows
    no verdict over the next, and the runner-up is the explainer `vs_next` is about."""
    from dina_datasets.analysis.report import write_report

    n = 40
    base = np.linspace(0.5, 0.9, n)
    values = {"Saliency": base, "Rise": base.copy(), "RandomExp": base - 0.4}
    made = write_report(frame(values), str(tmp_path / "tie"), n_boot=20, sizes=(10,),
                        stability_boot=5, figures=False)
    top = made.frames["leaders"].iloc[0]
    assert top["leader"] == "tie: Saliency, Rise" and top["vs_next"] == "tie at #1: no leader"
    assert top["runner_up"] == "RandomExp" and top["vs_RandomExp"] == "better"
    values["Saliency"] = base + 0.2  # a lone leader: its verdict over the next one
    made = write_report(frame(values), str(tmp_path / "lead"), n_boot=20, sizes=(10,),
                        stability_boot=5, figures=False)
    top = made.frames["leaders"].iloc[0]
    assert (top["leader"], top["runner_up"], top["vs_next"]) == ("Saliency", "Rise", "better")


def test_a_margin_that_overflows_is_refused():
    """--equivalence-margin 1e308 on Complexity-sized scores (spread ~5): the margin became
    infinite, every pair read "equivalent" and the JSON margin null; now refused."""
    rng = np.random.default_rng(0)
    values = {e: rng.normal(mu, 5, 50) for e, mu in (("Saliency", 5), ("Rise", 10))}
    with pytest.raises(ConfigError, match=r"equivalence margin 1e\+308 x the metric's "
                       r"spread .* is not a finite number"):
        stats.pairs(frame(values, metric="Complexity"), margin=1e308)
    assert stats.pairs(frame(values, metric="Complexity"), margin=2.0)["margin"].iloc[0] > 5


def test_the_same_scores_in_another_record_order_tie():
    """Rise holds Saliency's scores, its records in another order (paired by image_id): the
    means differ in the last bits (a sum in another order), and Saliency was ranked #1 with
    a leader mark over an identical explainer; now they share #1 and neither leads."""
    from dina_datasets.analysis import leaderboard

    rng = np.random.default_rng(3)
    n = 1000
    x, perm = rng.random(n), rng.permutation(n)
    ids = np.array([f"i{i:04d}" for i in range(n)])
    values = {"Saliency": x, "Rise": x[perm], "RandomExp": x * 0.5}
    table = frame(values).assign(image_id=np.r_[ids, ids[perm], ids])
    board = leaderboard.from_table(table)
    top = [board.get(f"ResNet50-{e}", "Insertion") for e in ("Saliency", "Rise")]
    assert top[0].mean != top[1].mean  # a few ulps apart
    assert [t.rank for t in top] == [1, 1] and [t.leads for t in top] == [False, False]
    assert board.get("ResNet50-RandomExp", "Insertion").rank == 3
    from dina_datasets.analysis.stats.summaries import shared_ranks

    got = shared_ranks(np.array([0.5, 0.7, 0.5 + 1e-12, 0.1]), True)
    assert got.tolist() == [2, 1, 2, 4]
    assert shared_ranks(np.array([0.5, 0.7, 0.1]), False).tolist() == [2, 3, 1]


def test_a_matrix_of_no_explainer_is_empty():
    """A model whose explainers are all flagged (degenerate maps) asks for a matrix of no
    explainer: an empty one, not a DuckDB error."""
    import pandas as pd

    frame = pd.DataFrame([("M", "Saliency", "Insertion", "softmax", 0, "a", 1, 1, 0.3)],
                         columns=["model", "explainer", "metric", "activation", "index",
                                  "image_id", "label", "prediction", "score"])
    matrix = stats.open_scores(frame).matrix("M", "Insertion", [])
    assert matrix.values.shape == (0, 0) and matrix.explainers == []
