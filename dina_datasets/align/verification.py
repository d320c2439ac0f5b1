"""`--verify`: whether other configs' published files follow the order just recovered.

On `VERIFY_SAMPLE` (200) matched records spread over the file, each other config's records
are compared with the maps recomputed here for the images the alignment gave them (the
cheapest explainer of that config's model, as `align` chooses it). Every sampled record
must match its image: "same order (k/k)"; else "different (j/k agree)".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets import catalog, formats
from dina_datasets.align import matching, recompute
from dina_datasets.align.published import Published
from dina_datasets.images import ImageEntry, is_placeholder
from dina_datasets.layout import Layout

VERIFY_SAMPLE = 200


def verify(configs: Sequence[str], aligned: str, data_url: str, *,
           weights: str = "pretrained", batch_size: int = 32, sample: int = VERIFY_SAMPLE,
           storage_options: dict[str, Any] | None = None) -> list[str]:
    """One line per config: "CONFIG: same order (k/k)" or "CONFIG: different (...)"."""
    refs = formats.read_imagenet_json(aligned, storage_options)
    matched = np.array([i for i, r in enumerate(refs) if r.image_id and
                        not is_placeholder(r.image_id)], np.int64)
    picked = matched[np.unique(np.linspace(0, len(matched) - 1, min(sample, len(matched)))
                               .astype(np.int64))] if len(matched) else matched
    entries = [ImageEntry(refs[i].path, refs[i].image_id, refs[i].label) for i in picked]
    layout, lines = Layout(data_url), []
    makers: dict[tuple[str, str], recompute.Recompute] = {}
    for config in configs:
        cell = catalog.Cell.from_name(config, allow_missing=True)
        name = recompute.cheapest(cell.model, cell.explainer)
        through = "" if name == cell.explainer else f" (through {cell.model}-{name})"
        published = Published.open(layout.explanations(cell.model, name),
                                   storage_options=storage_options)
        if published.num_records != len(refs):
            lines.append(f"{cell.name}: different ({published.num_records} records, the "
                         f"aligned file lists {len(refs)}){through}")
            continue
        if not len(picked):
            lines.append(f"{cell.name}: cannot tell (no matched record in {aligned})")
            continue
        key = (cell.model, name)
        if key not in makers:
            makers[key] = recompute.Recompute(cell.model, name, weights, batch_size)
        here = makers[key].fingerprints(entries)
        there = published.fingerprints_at(picked)
        agree = int(((here * there).sum(axis=1) >= matching.MIN_SIMILARITY).sum())
        verdict = (f"same order ({agree}/{len(picked)})" if agree == len(picked) else
                   f"different ({agree}/{len(picked)} sampled records agree)")
        lines.append(f"{cell.name}: {verdict}{through}")
    return lines
