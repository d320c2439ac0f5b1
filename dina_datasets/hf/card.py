"""The dataset card: its YAML `configs:` block and its tables of models, explainers and
metrics generated from the catalog, and the README.md of an export rendered from
`dataset_card.md`.

`python -m dina_datasets.hf.card` rewrites the generated blocks of `dataset_card.md` and
`builders/dina/README.md` after the catalog changed (a test checks they are in sync).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import datasets
import yaml

from dina_datasets import catalog
from dina_datasets.errors import FormatError, LayoutError

SPLIT = "validation"
TEMPLATE = Path(__file__).resolve().with_name("dataset_card.md")  # package data
HUB_README = Path(__file__).resolve().parents[2] / "builders" / "dina" / "README.md"
_KEY = re.compile(r"^[A-Za-z_][\w-]*:")


def data_files_pattern(config: str) -> str:
    """Where a config's Parquet shards lie in an export (relative to its root)."""
    return f"{config}/{SPLIT}-*.parquet"


def shard_name(config: str, index: int, count: int) -> str:
    """The path of one Parquet shard of a config in an export."""
    return f"{config}/{SPLIT}-{index:05d}-of-{count:05d}.parquet"


def configs_block(names: Iterable[str]) -> str:
    """The YAML `configs:` block for these config names (Hub-native Parquet layout)."""
    lines = ["configs:"]
    for name in names:
        lines += [f"- config_name: {name}", "  data_files:", f"  - split: {SPLIT}",
                  f"    path: {data_files_pattern(name)}"]
    return "\n".join(lines) + "\n"


def dataset_info_block(infos: Mapping[str, datasets.DatasetInfo]) -> str:
    """The YAML `dataset_info:` block (features, split sizes) of exported configs."""
    entries = []
    for name, info in infos.items():
        entry: dict[str, Any] = {"config_name": name}
        entry.update(info._to_yaml_dict())
        entries.append(entry)
    return yaml.safe_dump({"dataset_info": entries}, sort_keys=False, width=100)


def split_front_matter(text: str) -> tuple[str, str]:
    """(YAML front matter, body) of a card; FormatError when it has no front matter."""
    if not text.startswith("---\n"):
        raise FormatError("the dataset card must start with a '---' YAML front matter line")
    end = text.find("\n---\n", 3)
    if end < 0:
        raise FormatError("the dataset card's YAML front matter has no closing '---' line")
    return text[4:end + 1], text[end + 5:]


def metadata(text: str) -> dict[str, Any]:
    """The card's YAML metadata as a dict."""
    front, _ = split_front_matter(text)
    try:
        data = yaml.safe_load(front) or {}
    except yaml.YAMLError as err:
        raise FormatError(f"the dataset card's YAML front matter does not parse: {err}") from None
    if not isinstance(data, dict):
        raise LayoutError("the dataset card's YAML front matter is not a mapping")
    return data


def replace_key(front: str, key: str, block: str) -> str:
    """Front matter with the top-level `key` block replaced by `block` (appended if absent)."""
    lines = front.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return front + block
    end = next((j for j in range(start + 1, len(lines)) if _KEY.match(lines[j])), len(lines))
    return "".join(lines[:start]) + block + "".join(lines[end:])


GENERATED_START = "<!-- generated from dina_datasets.catalog: start -->"
GENERATED_END = "<!-- generated from dina_datasets.catalog: end -->"


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
    lines += ["", "| metric | family | better | images scored | parameters |",
              "|---|---|---|---|---|"]
    for spec in catalog.METRICS.values():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()) or "-"
        images = f"first {spec.subset:,}" if spec.subset else f"all {catalog.NUM_IMAGES:,}"
        lines.append(f"| {spec.name} | {spec.family} | "
                     f"{'higher' if spec.higher_is_better else 'lower'} | {images} | {params} |")
    return "\n".join(lines) + "\n"


def _with_tables(body: str) -> str:
    start, end = body.find(GENERATED_START), body.find(GENERATED_END)
    if start < 0 or end < start:
        return body
    return (body[:start + len(GENERATED_START)] + "\n" + catalog_tables() + body[end:])


def render(template: str, names: Iterable[str],
           infos: Mapping[str, datasets.DatasetInfo] | None = None) -> str:
    """A card: the template with its `configs:` (and, given infos, `dataset_info:`) blocks
    generated."""
    front, body = split_front_matter(template)
    front = replace_key(front, "configs", configs_block(names))
    if infos is not None:
        front = replace_key(front, "dataset_info", dataset_info_block(infos))
    return f"---\n{front}---\n{_with_tables(body)}"


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
    from dina_datasets.recordio.storage import atomic_write

    text = published_card()
    for path in (TEMPLATE, HUB_README):  # the second exists in a checkout only
        with atomic_write(str(path), "w") as handle:
            handle.write(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
