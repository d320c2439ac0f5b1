"""`dina export`: configs as a Hub dataset repository (Parquet shards + README.md)."""

from __future__ import annotations

import argparse

from dina_datasets.cli import engine
from dina_datasets.hf.export import MAX_SHARD_BYTES
from dina_datasets.hf.features import ENCODINGS
from dina_datasets.layout import DEFAULT_DATA_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="+", metavar="CONFIG",
                        help="config names (e.g. DinoV2-Rise), patterns (DinoV2-*) or 'all'")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the folder to write (a Hub dataset repository)")
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help=f"bucket-shaped folder to read (default {DEFAULT_DATA_URL})")
    parser.add_argument("--imagenet-json", "--imagenet_json", metavar="FILE",
                        help="kecam's imagenet_data.json that produced the cell: fills "
                        "image_id and label")
    parser.add_argument("--preprocess-url", metavar="URL",
                        help="preprocess_dataset.tfrecord, or a bucket holding them: fills "
                             "prediction")
    parser.add_argument("--encoding", choices=ENCODINGS, default="array",
                        help="explanation column: typed Array3D (default) or float32 bytes "
                             "(faster to stream, decode with np.frombuffer)")
    parser.add_argument("--compression", default="none",
                        choices=("none", "snappy", "zstd", "lz4", "gzip", "brotli"),
                        help="Parquet codec of the maps (default none: float maps compress "
                             "little and decode faster without)")
    parser.add_argument("--max-shard-bytes", type=int, default=MAX_SHARD_BYTES, metavar="N",
                        help="largest Parquet file (default 500 MB)")
    parser.add_argument("--card", metavar="FILE",
                        help="dataset card template (default: the project's dataset_card.md)")
    parser.add_argument("--no-crc", action="store_true", help="skip the records' CRC checks")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a README.md of --out that is not an earlier export's "
                             "card (an earlier export's shards and card are always replaced)")
    engine.add_arguments(parser, workers=False)


def check_out(out: str, *, overwrite: bool, storage_options: dict | None) -> None:
    """Before the work: `out` may receive a Hub export (a folder, or a new path, whose
    README.md, if any, is an earlier export's card unless `overwrite`); OutputError."""
    from dina_datasets import storage
    from dina_datasets.cli import OutputError, check_outputs
    from dina_datasets.hf.card import is_export_card

    check_outputs({}, overwrite=overwrite, storage_options=storage_options, folder=out)
    url = storage.join(out, "README.md")
    fs, path = storage.filesystem(url, storage_options)
    if fs.isdir(path):
        raise OutputError(f"cannot write {url}: it is a folder")
    if overwrite or not fs.isfile(path):
        return
    with fs.open(path, "rb") as handle:
        text = handle.read(1 << 20).decode("utf-8", errors="replace")
    if not is_export_card(text):
        raise OutputError(f"{url} exists and is not the card of an earlier export (no "
                          "`configs:` block of {config}/validation-*.parquet shards): refusing "
                          "to replace it; pass --overwrite to replace it, or choose another "
                          "--out")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from dina_datasets.hf.export import export

    check_out(args.out, overwrite=args.overwrite, storage_options=args.storage_options)
    settings = dict(data_url=args.data_url, imagenet_json=args.imagenet_json,
                    preprocess_url=args.preprocess_url, encoding=args.encoding,
                    compression=args.compression, max_shard_bytes=args.max_shard_bytes,
                    card_template=args.card, check_crc=not args.no_crc,
                    storage_options=args.storage_options)
    ray_engine = engine.engine(args)
    if ray_engine is not None:
        from dina_datasets.ray import engine as ray_engines

        found = ray_engines.export(args.configs, args.out, ray_engine, **settings)
        _print(args.out, found)
        return 0
    bars = []

    def progress(config: str, total: int):
        bar = tqdm(total=total, desc=config, unit=" rows", dynamic_ncols=True)
        bars.append(bar)
        return bar.update

    try:
        found = export(args.configs, args.out, progress=progress, **settings)
    finally:
        for bar in bars:
            bar.close()
    _print(args.out, found)
    return 0


def _print(out: str, found: list) -> None:
    from dina_datasets.hf.export import SCORES_CONFIG

    table = next((c for c in found if c.name == SCORES_CONFIG), None)
    found = [c for c in found if c is not table]
    rows = sum(c.num_examples for c in found)
    print(f"{out}: {len(found)} configs, {rows:,} rows, "
          f"{sum(len(c.files) for c in found)} Parquet files, README.md"
          + (f"; config '{SCORES_CONFIG}': {table.num_examples:,} per-image scores" if table
             else ""))
