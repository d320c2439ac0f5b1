"""The dataset card: huggingface_hub and datasets read it, and its facts match the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

from dina_datasets import catalog
from dina_datasets.hf.card import catalog_tables

CARD = Path(__file__).resolve().parent.parent / "dataset_card.md"
SECTIONS = ["## Configurations", "## How the data was made", "### Metric definitions",
            "## Data fields", "## How to load", "## Known limitations", "## Citation"]


@pytest.fixture(scope="module")
def card() -> DatasetCard:
    return DatasetCard.load(CARD)


def test_metadata_loads_with_huggingface_hub(card):
    data = card.data.to_dict()
    assert data["pretty_name"].startswith("DINA")
    assert data["license"] == "unknown"
    assert data["task_categories"] == ["image-classification"]
    assert data["size_categories"] == ["1M<n<10M"]
    assert len(data["configs"]) == 117


def test_configs_block_is_what_datasets_uses(card):
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert sorted(configs) == sorted(c.name for c in catalog.published_cells())
    assert configs["DinoV2-Rise"]["data_files"] == [
        {"split": "validation", "path": "DinoV2-Rise/validation-*.parquet"}]


def test_body_has_every_section_and_the_catalog_tables(card):
    positions = [card.text.find(title) for title in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), positions
    assert catalog_tables() in card.text
    for spec in [*catalog.EXPLAINERS.values(), *catalog.METRICS.values()]:
        assert f"| {spec.name} |" in card.text
    for word in ("JAX", "TensorFlow", "PyTorch", "1,024", "MuFidelity", "random.shuffle"):
        assert word in card.text


def test_published_card_says_what_and_whose(card):
    text = " ".join(card.text.split())
    assert "This repository holds 117 configurations of the published DINA files" in text
    assert "50,000 rows each: 5,850,000 rows in all" in text
    assert "computed by the DINA authors (DEEL)" in text
    assert "and always for data generated" not in text
    assert "a flat folder of images has no class to read: -1" in text


def test_size_categories():
    from dina_datasets.hf.card import size_category

    assert [size_category(n) for n in (0, 4, 999, 1_000, 50_000, 5_850_000, 10**9)] == [
        "n<1K", "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M", "n>1B"]
