"""The steps that read the demo's data back as a user would: `load_dataset` (map-style and
streaming into a torch DataLoader) and a Hub-native Parquet export read by stock `datasets`."""

from __future__ import annotations

import os

from dina_datasets.demo.session import Demo


def load_maps(demo: Demo) -> None:
    import torch

    from dina_datasets.hf.loading import load_dataset

    configs, bucket = demo.result.configs, demo.bucket
    cache = os.path.join(demo.out, "hf_cache")
    for config in dict.fromkeys(configs[:1] + configs[-1:]):
        rows = load_dataset("dina", config, split="validation", data_url=bucket,
                            cache_dir=cache)
        row = rows[0]
        deletion = row.get("Deletion")
        demo.say(f"  {config}: {rows.num_rows} rows; row 0: image_id={row['image_id']!r} "
                 f"label={row['label']} prediction={row['prediction']} explanation "
                 f"{len(row['explanation'])}x{len(row['explanation'][0])}x"
                 f"{len(row['explanation'][0][0])}"
                 + ("" if deletion is None else f" Deletion={deletion:.4g}"))
    stream = load_dataset("dina", configs[0], split="validation", data_url=bucket,
                          streaming=True)
    loader = torch.utils.data.DataLoader(stream.with_format("torch"), batch_size=2,
                                         num_workers=2)
    shapes = [tuple(batch["explanation"].shape) for batch in loader]
    demo.say(f"  streamed {configs[0]} through DataLoader(num_workers=2): batches {shapes}")


def export_maps(demo: Demo) -> None:
    import datasets

    from dina_datasets.hf.export import export
    from dina_datasets.hf.loading import load_dataset

    config, bucket, hub = demo.result.configs[0], demo.bucket, os.path.join(demo.out, "hub")
    demo.show("export", config, "--data-url", bucket, "--out", hub)
    export([config], hub, data_url=bucket)
    stock = datasets.load_dataset(hub, config, split="validation")
    ours = load_dataset("dina", config, split="validation", data_url=bucket,
                        cache_dir=os.path.join(demo.out, "hf_cache"))
    same = stock["index"] == ours["index"] and stock["explanation"] == ours["explanation"]
    demo.say(f"  stock datasets.load_dataset({hub!r}, {config!r}): {stock.num_rows} rows, "
             f"{'identical to' if same else 'DIFFERENT FROM'} the builder's rows; its "
             "README.md says they were generated here, with random weights")
    if not same:
        raise RuntimeError("the export does not match the builder's rows")
