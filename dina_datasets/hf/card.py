"""The dataset card: its YAML `configs:` block and its tables of models, explainers and
metrics generated from the catalog, and the README.md of an export rendered from
`dataset_card.md`: what the export holds (configs, rows, size category) and where each
config came from (the published DINA files, or generated here: models, weights, explainer
parameters, library versions from the generation manifest) are generated from the exported
data, never assumed.

The front matter is read and edited as a `huggingface_hub.DatasetCard` (`parse`).
`python -m dina_datasets.hf.card` rewrites the generated blocks of `dataset_card.md` and
`builders/dina/README.md` after the catalog changed (a test checks they are in sync).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import datasets
import yaml
from huggingface_hub import DatasetCard

from dina_datasets import catalog
from dina_datasets.errors import FormatError, LayoutError

SPLIT = "validation"
TEMPLATE = Path(__file__).resolve().with_name("dataset_card.md")  # package data
HUB_README = Path(__file__).resolve().parents[2] / "builders" / "dina" / "README.md"


def data_files_pattern(config: str) -> str:
    """Where a config's Parquet shards lie in an export (relative to its root)."""
    return f"{config}/{SPLIT}-*.parquet"


def shard_name(config: str, index: int, count: int) -> str:
    """The path of one Parquet shard of a config in an export."""
    return f"{config}/{SPLIT}-{index:05d}-of-{count:05d}.parquet"


def configs_entries(names: Iterable[str]) -> list[dict[str, Any]]:
    """The YAML `configs:` entries for these config names (Hub-native Parquet layout)."""
    return [{"config_name": name, "data_files": [{"split": SPLIT,
                                                  "path": data_files_pattern(name)}]}
            for name in names]


def dataset_info_entries(infos: Mapping[str, datasets.DatasetInfo]) -> list[dict[str, Any]]:
    """The YAML `dataset_info:` entries (features, split sizes) of exported configs."""
    return [{"config_name": name, **info._to_yaml_dict()} for name, info in infos.items()]


def parse(text: str) -> DatasetCard:
    """A card as `huggingface_hub.DatasetCard` (its YAML front matter as `.data`, its body as
    `.text`); FormatError when it has no front matter or its YAML does not parse,
    LayoutError when that YAML is not a mapping."""
    if not text.startswith("---\n"):
        raise FormatError("the dataset card must start with a '---' YAML front matter line")
    if text.find("\n---\n", 3) < 0:
        raise FormatError("the dataset card's YAML front matter has no closing '---' line")
    try:
        return DatasetCard(text)
    except yaml.YAMLError as err:
        raise FormatError(f"the dataset card's YAML front matter does not parse: {err}") from None
    except ValueError as err:
        raise LayoutError(f"the dataset card's YAML front matter is not a mapping ({err})"
                          ) from None


def metadata(text: str) -> dict[str, Any]:
    """The card's YAML metadata as a dict."""
    return parse(text).data.to_dict()


def is_export_card(text: str) -> bool:
    """Whether `text` is a card this package wrote: a `configs:` block whose every entry
    reads `{config}/validation-*.parquet` (an earlier export's README.md, replaced freely)."""
    try:
        configs = metadata(text).get("configs")
    except (FormatError, LayoutError):
        return False
    return isinstance(configs, list) and bool(configs) and all(
        isinstance(c, dict) and isinstance(c.get("config_name"), str) and
        c.get("data_files") == [{"split": SPLIT, "path": data_files_pattern(c["config_name"])}]
        for c in configs)


SCORES_CONFIG = "scores"  # the export's scores table, beside the configs of maps
GENERATED_START = "<!-- generated from dina_datasets.catalog: start -->"
GENERATED_END = "<!-- generated from dina_datasets.catalog: end -->"


# One line per reference explainer; the full definitions are in
# dina_datasets/generation/baselines.py.
REFERENCE_DEFINITIONS = {
    "Sobel": "`sqrt(sobel(g, 0)**2 + sobel(g, 1)**2)`, g = channel mean, "
             "`scipy.ndimage.sobel`, reflected borders",
    "Laplace": "`abs(laplace(g))`, g = channel mean, `scipy.ndimage.laplace`, "
               "reflected borders",
    "RandomExp": "uniform [0, 1) per pixel, `numpy.random.default_rng([seed, "
                 "blake2b(image bytes)])`, seed=0",
}


def _value(value: Any) -> str:
    return "dataset mean" if value == "dataset_mean" else repr(value)


def catalog_tables() -> str:
    """Markdown tables of the models, explainers and metrics with DINA's settings."""
    lines = ["| model | keras-cv-attention-models constructor | input | rescale mode |",
             "|---|---|---|---|"]
    for m in catalog.MODELS.values():
        if m.contributed:
            continue
        kwargs = ", ".join(f"{k}={v!r}" for k, v in
                           {**m.kwargs, "classifier_activation": "softmax"}.items())
        note = " (explained through `sum(model(x) * targets, -1)`)" if m.operator else ""
        lines.append(f"| {m.name} | `{m.constructor}({kwargs})`{note} | {m.input_size} | "
                     f"{m.rescale_mode} |")
    lines += ["", "| explainer | xplique class | hyperparameters | map channels |",
              "|---|---|---|---|"]
    for e in catalog.EXPLAINERS.values():
        if e.contributed:
            continue
        params = ", ".join(f"{k}={_value(v)}" for k, v in e.params.items()) or "defaults"
        lines.append(f"| {e.name} | `{e.method}` | {params} | {e.channels} |")
    lines += ["", "| reference explainer (not published) | definition, on the model's "
              "preprocessed input | map channels |", "|---|---|---|"]
    for e in catalog.EXPLAINERS.values():
        if e.reference:
            lines.append(f"| {e.name} | {REFERENCE_DEFINITIONS.get(e.name, e.method)} | "
                         f"{e.channels} |")
    lines += ["", "| metric | family | better | images scored | parameters | depends on the "
              "output activation |", "|---|---|---|---|---|---|"]
    for spec in catalog.METRICS.values():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()) or "-"
        images = f"first {spec.subset:,}" if spec.subset else f"all {catalog.NUM_IMAGES:,}"
        lines.append(f"| {spec.name} | {spec.family} | "
                     f"{'higher' if spec.higher_is_better else 'lower'} | {images} | {params} | "
                     f"{'yes' if spec.depends_on_activation else 'no'} |")
    return "\n".join(lines) + "\n"


def _with_tables(body: str) -> str:
    start, end = body.find(GENERATED_START), body.find(GENERATED_END)
    if start < 0 or end < start:
        return body
    return (body[:start + len(GENERATED_START)] + "\n" + catalog_tables() + body[end:])


# Hugging Face's size categories: (upper bound, name), by number of rows.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                   (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
PUBLISHED = "published"    # the DINA authors' files (gs://xai-deel)
GENERATED = "generated"    # written by `dina generate` (a generation manifest beside it)
UNKNOWN = "unknown"        # neither: no manifest, not the published 50,000-row file


def size_category(rows: int) -> str:
    """The Hub's `size_categories` value for a dataset of `rows` rows."""
    for bound, name in SIZE_CATEGORIES:
        if rows < bound:
            return name
    return "n>1B"


def _block(body: str, name: str, text: str) -> str:
    """`body` with the text between `<!-- generated: NAME -->` and `<!-- generated: end of
    NAME -->` replaced by `text` (unchanged when the markers are absent)."""
    start, end = f"<!-- generated: {name} -->", f"<!-- generated: end of {name} -->"
    i, j = body.find(start), body.find(end)
    if i < 0 or j < i:
        return body
    return body[:i + len(start)] + "\n" + text.rstrip("\n") + "\n" + body[j:]


def render(template: str, names: Iterable[str],
           infos: Mapping[str, datasets.DatasetInfo] | None = None,
           provenance: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A card: the template with its `configs:` block generated. Given `infos` (the exported
    configs' split sizes), also `dataset_info:`, `size_categories:` and the blocks saying what
    the repository holds and where each config came from (`provenance[config]`, see
    `export.provenance`); without, the card of the published dataset."""
    names = list(names)
    card = parse(template)
    card.data.configs = configs_entries(names)
    if infos is None:
        rows = {name: catalog.NUM_IMAGES for name in names}
        origins = {name: {"origin": PUBLISHED} for name in names}
    else:
        card.data.dataset_info = dataset_info_entries(infos)
        rows = {name: sum(s.num_examples for s in info.splits.values())
                for name, info in infos.items()}
        origins = {name: dict((provenance or {}).get(name) or {"origin": UNKNOWN})
                   for name in names}
    card.data.size_categories = [size_category(sum(rows.values()))]
    if not any(o.get("origin") == PUBLISHED for o in origins.values()):
        card.data.source_datasets = None  # dropped from the front matter
    body = _block(card.text, "contents", contents_text(rows, origins))
    card.text = _with_tables(_block(body, "provenance", provenance_text(origins)))
    return str(card)


def contents_text(rows: Mapping[str, int], origins: Mapping[str, Mapping[str, Any]]) -> str:
    """What the repository holds: its configs of maps, their rows and origin, and the
    `scores` config (the scores table of those configs) when present."""
    table = rows.get(SCORES_CONFIG)
    maps = {name: count for name, count in rows.items() if name != SCORES_CONFIG}
    total = sum(maps.values())
    also = "" if table is None else (f" The `{SCORES_CONFIG}` config holds their per-image "
                                     f"scores, {table:,} rows (`dina scores`).")
    if all(origins.get(n, {}).get("origin") == PUBLISHED for n in maps) and \
            set(maps.values()) == {catalog.NUM_IMAGES}:
        return _wrap(f"This repository holds {len(maps)} configurations of the published DINA "
                     f"files (computed by the DINA authors), {catalog.NUM_IMAGES:,} rows each: "
                     f"{total:,} rows in all.{also}") + "\n"
    lines = [_wrap(f"This repository holds {len(maps)} configuration(s), {total:,} rows in all, "
                   "in the DINA format (see the provenance of each under \"Source and "
                   f"licence\"):{also}"), "",
             "| config | rows | origin |", "|---|---|---|"]
    for name, count in maps.items():
        lines.append(f"| {name} | {count:,} | {_origin_words(origins.get(name, {}))} |")
    if table is not None:
        lines.append(f"| {SCORES_CONFIG} | {table:,} | the score files of the configs above |")
    return "\n".join(lines) + "\n"


def _origin_words(origin: Mapping[str, Any]) -> str:
    kind = origin.get("origin")
    if kind == PUBLISHED:
        return "published DINA files (computed by the DINA authors)"
    if kind == GENERATED:
        return f"generated with `dina generate`, weights: {origin.get('weights', '?')}"
    return "not recorded (no generation manifest, and not the published 50,000-row file)"


def provenance_text(origins: Mapping[str, Mapping[str, Any]]) -> str:
    """Where each config came from, from the exported data's own records (the `scores`
    config comes from theirs)."""
    origins = {n: o for n, o in origins.items() if n != SCORES_CONFIG}
    published = [n for n, o in origins.items() if o.get("origin") == PUBLISHED]
    generated = {n: o for n, o in origins.items() if o.get("origin") == GENERATED}
    unknown = [n for n, o in origins.items() if o.get("origin") not in (PUBLISHED, GENERATED)]
    parts = []
    if published:
        which = "The maps" if len(published) == len(origins) else \
            f"The maps of {', '.join(published)}"
        parts.append(f"{which} were computed by the DINA authors (DEEL) on the ImageNet "
                     "(ILSVRC 2012) validation set; ImageNet's terms of use apply to anything "
                     "derived from its images. The licence of the published maps has not been "
                     "stated by their authors (`license: unknown`).")
    for name, origin in generated.items():
        versions = ", ".join(f"{k} {v}" for k, v in (origin.get("versions") or {}).items()
                             if v) or "not recorded"
        params = ", ".join(f"{k}={v!r}" for k, v in
                           (origin.get("explainer_params") or {}).items()) or "defaults"
        weights = origin.get("weights", "?")
        note = (" (random initialisation: the maps show that the pipeline works, not what a "
                "trained model attends to)") if weights == "none" else ""
        parts.append(
            f"**{name}** was generated with `dina generate` (not by the DINA authors): "
            f"model {origin.get('model')} built by `{origin.get('model_source') or '?'}`, "
            f"weights `{weights}`{note}; explainer {origin.get('explainer')} with {params}; "
            f"{origin.get('num_images', '?')} images from "
            f"`{origin.get('images_source') or 'not recorded'}`; seed {origin.get('seed')}; "
            f"libraries: {versions}.")
    if unknown:
        parts.append(f"The origin of {', '.join(unknown)} is not recorded: no generation "
                     "manifest was found beside the explanations file, and it is not the "
                     "published 50,000-row file. Do not take it for DINA's published data.")
    return "\n\n".join(map(_wrap, parts)) + "\n"


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=92, break_long_words=False, break_on_hyphens=False)


def read_template(path: str | Path | None = None) -> str:
    """The card template: `path`, else the project's `dataset_card.md`."""
    path = Path(path) if path else TEMPLATE
    if not path.is_file():
        raise LayoutError(f"dataset card template not found at {path}; pass the path of a "
                          "dataset_card.md (e.g. `dina export --card dataset_card.md`)")
    return path.read_text(encoding="utf-8")


def published_card(template: str | None = None) -> str:
    """The card of the whole dataset: the published configs of the catalog."""
    return render(template if template is not None else read_template(),
                  [cell.name for cell in catalog.published_cells()])


def main() -> None:
    """Regenerate dataset_card.md and builders/dina/README.md from the catalog."""
    from dina_datasets.storage import atomic_write

    text = published_card()
    for path in (TEMPLATE, HUB_README):  # the second exists in a checkout only
        with atomic_write(str(path), "w") as handle:
            handle.write(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
