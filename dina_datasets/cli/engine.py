"""Options of the commands that can run on Ray (`--engine`, `--address`, ...) and work on
several configs (`--configs`, `--all`). Not a command itself."""

from __future__ import annotations

import argparse
import os
from typing import Any

from dina_datasets import catalog
from dina_datasets.errors import ConfigError

ENGINES = ("local", "ray")


def add_arguments(parser: argparse.ArgumentParser, workers: bool = True) -> None:
    """`--engine`, `--address` and, for commands run by workers, `--workers` and
    `--gpus-per-worker`."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=ENGINES, default="local",
                       help="local: this process (default); ray: the work on a Ray cluster's "
                       "workers (pip install 'dina-datasets[ray]')")
    group.add_argument("--address", metavar="ADDR",
                       help="the Ray cluster to join (HOST:PORT as `ray start --head` prints, "
                       "ray://HOST:PORT or auto; default: start one on this machine)")
    if workers:
        group.add_argument("--workers", type=int, metavar="N",
                           help="Ray workers, each building its model once (default: as many "
                           "as the cluster holds: one per CPU, or per G GPUs)")
        group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                           help="GPUs each Ray worker reserves (default 0)")


def add_config_arguments(parser: argparse.ArgumentParser, among: str = "of the grid") -> None:
    """`--configs` and `--all`, the alternatives to `--model` with `--explainer`."""
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help="several configs (names, or patterns like DinoV2-* matching "
                        f"configs {among}), instead of --model and --explainer")
    parser.add_argument("--all", action="store_true",
                        help=f"every config {among} (the reference explainers' only when named)")


def cells(args: argparse.Namespace, allow_missing: bool = False, data_url: str | None = None,
          storage_options: dict[str, Any] | None = None) -> list[catalog.Cell]:
    """The configs a command works on: --model with --explainer, --configs, or --all
    (patterns and --all among the configs present under `data_url` when given, else the
    catalog's)."""
    given = [bool(args.model or args.explainer), bool(args.configs), bool(args.all)]
    if sum(given) != 1:
        raise ConfigError("name the work with --model and --explainer, with --configs "
                          "CONFIG..., or with --all (exactly one of them)")
    if args.configs or args.all:
        from dina_datasets.hf.export import present_configs, resolve_configs

        present = None if data_url is None else present_configs(data_url, storage_options)
        names = resolve_configs(args.configs or ["all"], present, data_url)
        return [catalog.Cell.from_name(n) for n in names]
    if not (args.model and args.explainer):
        raise ConfigError("--model and --explainer go together (or use --configs / --all)")
    return [catalog.Cell(args.model, args.explainer, allow_missing=allow_missing)]


def engine(args: argparse.Namespace) -> Any:
    """The Ray engine's settings (`dina_datasets.ray.engine.Engine`), or None for local."""
    ray_only = [flag for flag, value in (("--address", args.address),
                                         ("--workers", getattr(args, "workers", None)),
                                         ("--gpus-per-worker",
                                          getattr(args, "gpus_per_worker", 0.0)))
                if value]
    if args.engine == "local":
        if ray_only:
            raise ConfigError(f"{', '.join(ray_only)} need --engine ray")
        return None
    from dina_datasets.ray import require

    require()
    from dina_datasets.ray.engine import Engine

    return Engine(args.address, getattr(args, "workers", None),
                  float(getattr(args, "gpus_per_worker", 0.0)),
                  tuple(os.path.abspath(p) for p in getattr(args, "registry", [])),
                  progress=not getattr(args, "no_progress", False))
