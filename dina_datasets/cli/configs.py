"""`dina configs`: the table of configs, derived from the catalog."""

from __future__ import annotations

import argparse
import json

from dina_datasets.catalog import NUM_IMAGES, cells
from dina_datasets.recordio.records import explanation_record_size as record_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--model", help="only this model's configs")
    parser.add_argument("--explainer", help="only this explainer's configs")


def rows(model: str | None = None, explainer: str | None = None) -> list[dict]:
    """One dict per available config, optionally filtered by model or explainer.

    Published configs have DINA's 50,000 maps; a contributed config has as many as the
    images it is run on, so its `num_records` and `size_bytes` are None.
    """
    from dina_datasets import catalog

    model = catalog.model(model).name if model else None
    explainer = catalog.explainer(explainer).name if explainer else None
    out = []
    for cell in cells():
        if (model and cell.model != model) or (explainer and cell.explainer != explainer):
            continue
        count = NUM_IMAGES if cell.published else None
        out.append({"config": cell.name, "model": cell.model, "explainer": cell.explainer,
                    "shape": list(cell.shape), "dtype": "float32",
                    "record_bytes": record_size(cell.shape), "num_records": count,
                    "size_bytes": None if count is None else record_size(cell.shape) * count,
                    "published": cell.published, "reference": cell.explainer_spec.reference})
    return out


def run(args: argparse.Namespace) -> int:
    table = rows(args.model, args.explainer)
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    width = max(len(r["config"]) for r in table) if table else 6
    print(f"{'config':<{width}}  {'model':<14} {'explainer':<22} {'shape':<13} {'size':>8}")
    for r in table:
        shape = "x".join(map(str, r["shape"]))
        note = "  (reference, not published)" if r["reference"] else "  (contributed)"
        size = f"{r['size_bytes'] / 1e9:>6.1f}GB" if r["published"] else f"{'-':>8}{note}"
        print(f"{r['config']:<{width}}  {r['model']:<14} {r['explainer']:<22} {shape:<13} "
              f"{size}")
    published = [r for r in table if r["published"]]
    total = sum(r["size_bytes"] for r in published)
    line = (f"{len(published)} configs, {sum(r['num_records'] for r in published):,} maps, "
            f"{total / 1e12:.2f} TB")
    others = len(table) - len(published)
    references = sum(1 for r in table if r["reference"])
    print(line + (f" published; {others} contributed (as many maps as the images they are "
                  f"run on), {references} of them the reference explainers' (`dina generate` "
                  "computes them)" if others else ""))
    return 0
