"""`dina demo`: the whole DINA loop, offline, on the embedded default."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", metavar="DIR",
                        help="folder for everything the demo makes: new, empty, or an earlier "
                        "demo's (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="one model, two explainers, two photos, no randomization metric, "
                        "Deletion with 10 steps; the planted model's Saliency and RandomExp on "
                        "its 64 crops (about a minute on two idle cores)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.demo import tour as demo

    started = time.perf_counter()
    result = demo.run(args.out, settings=demo.QUICK if args.quick else demo.FULL,
                      batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
    print(f"\nDone in {seconds / 60:.1f} min ({timing}). Everything is under {result.out}:")
    for line in demo.next_steps(result):
        print(line)
    return 0
