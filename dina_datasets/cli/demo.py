"""`dina demo`: the whole DINA loop, offline, on the embedded default."""

from __future__ import annotations

import argparse
import os
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", metavar="DIR",
                        help="folder for everything the demo makes: new, empty, or an earlier "
                        "demo's (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="one model, two explainers, two photos, no randomization metric, "
                        "Deletion with 10 steps (about a minute on two idle cores)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.demo import tour as demo

    started = time.perf_counter()
    result = demo.run(args.out, settings=demo.QUICK if args.quick else demo.FULL,
                      batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
    print(f"\nDone in {seconds / 60:.1f} min ({timing}). Everything is under {result.out}:")
    print(f"  images       {len(result.images)} photographs in {result.out}/images")
    print(f"  maps         {len(result.configs)} configs in the bucket layout under "
          f"{result.out}/bucket ({', '.join(result.configs)})")
    print(f"  scores       {result.score_files} score files beside the maps")
    print(f"  hub export   {result.out}/hub (Parquet + README.md, loads with stock datasets)")
    print("  leaderboard  " + ", ".join(result.tables))
    print("  pictures     " + ", ".join(result.pictures))
    print("Weights were random (offline). Next: `dina show CONFIG --index I --data-url "
          f"{result.out}/bucket --images {result.out}/images`, or the README's quick start.")
    scores = os.path.join(result.out, "scores.parquet")
    print("See the maps beside their images and scores in the explorer:\n"
          f"  dina explore --data-url {result.out}/bucket --images {result.out}/images"
          + (f" --scores {scores}" if os.path.exists(scores) else ""))
    return 0
