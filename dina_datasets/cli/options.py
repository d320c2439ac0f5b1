"""Options that several statistics commands share (`dina leaderboard`, `report`,
`reliability`): one definition of each flag and its check."""

from __future__ import annotations

import argparse

from dina_datasets.errors import ConfigError


def add_map_check(parser: argparse.ArgumentParser) -> None:
    """--maps-url and --map-sample: the sampled check of the cells' maps."""
    from dina_datasets.analysis.stats.sanity import MAP_SAMPLE

    parser.add_argument("--maps-url", metavar="URL",
                        help="bucket-shaped folder of the cells' maps, checked for "
                        "degenerate maps (all-zero, constant, near zero; default: --data-url "
                        "when the scores are read from there)")
    parser.add_argument("--map-sample", type=int, default=MAP_SAMPLE, metavar="K",
                        help=f"maps read per cell for that check (default {MAP_SAMPLE}, "
                        "evenly spread; 0: no check)")


def check_map_sample(args: argparse.Namespace) -> None:
    """ConfigError for a negative --map-sample."""
    if args.map_sample < 0:
        raise ConfigError(f"--map-sample must be 0 (no check) or a positive number of maps, "
                          f"got {args.map_sample}")


def maps_url(args: argparse.Namespace) -> str | None:
    """Where the maps to check are: --maps-url, else --data-url when the scores come from
    there (not with --scores)."""
    return args.maps_url or (None if args.scores else args.data_url)


def add_verdicts(parser: argparse.ArgumentParser) -> None:
    """--equivalence-margin and --margin-units: the TOST verdicts' margin."""
    from dina_datasets.analysis.stats.equivalence import MARGIN, UNITS

    parser.add_argument("--equivalence-margin", type=float, default=MARGIN, metavar="F",
                        help="equivalence margin of the TOST verdicts: a fraction of the "
                        "metric's per-image spread (pooled standard deviation of the "
                        f"explainers' scores; default {MARGIN}), or a score difference "
                        "with --margin-units score")
    parser.add_argument("--margin-units", choices=UNITS, default="sd",
                        help="sd (default): --equivalence-margin is a fraction of the "
                        "spread; score: it is in the metric's own units")


def add_mixed_settings(parser: argparse.ArgumentParser) -> None:
    """--allow-mixed-settings."""
    parser.add_argument("--allow-mixed-settings", action="store_true",
                        help="compare scores of one model and metric computed with different "
                        "settings (other metric parameters, seed, weights, or published vs "
                        "evaluated here); refused by default, naming what differs")
