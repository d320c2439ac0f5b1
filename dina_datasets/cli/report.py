"""`dina report`: the statistics of a scores table (or of every score file under a folder)
as tables (CSV, Markdown) and figures (PNG, SVG) under one folder, with a report.md that
says how to read them. With `--data-url`, the generation cost records found there
(`dina_datasets.analysis.cost`) add the cost-vs-quality section."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from dina_datasets.cli import options
from dina_datasets.layout import DEFAULT_DATA_URL


def _sizes(text: str) -> tuple[int, ...]:
    from dina_datasets.errors import check_positive_int

    try:
        return tuple(check_positive_int("image count", int(v)) for v in text.split(","))
    except ValueError:  # not an integer, or a ConfigError: not positive
        raise argparse.ArgumentTypeError(f"expected positive image counts such as 100,1000, "
                                         f"got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dina_datasets.analysis.filters import FILTER_HELP
    from dina_datasets.analysis.stats import SIZES

    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder of score files (any fsspec URL; "
                        f"default {DEFAULT_DATA_URL}); its generation cost records, if any, "
                        "add a cost-vs-quality section")
    parser.add_argument("--scores", metavar="FILE",
                        help="a scores table made by `dina scores` (instead of --data-url)")
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help="configs (or patterns such as 'DinoV2-*') to include")
    parser.add_argument("--imagenet-json", metavar="FILE",
                        help="kecam's imagenet_data.json of the cells: image ids and labels")
    parser.add_argument("--filter", action="append", default=[], metavar="FILTER",
                        dest="filters", help=f"keep only some scores (repeatable, AND): "
                        f"{FILTER_HELP}")
    parser.add_argument("--alpha", type=float, default=0.01,
                        help="significance level of the paired verdicts (default 0.01)")
    options.add_map_check(parser)
    options.add_verdicts(parser)
    parser.add_argument("--alpha-cd", type=float, default=0.05,
                        help="significance level of the Nemenyi critical difference "
                        "(default 0.05, as in Demšar 2006)")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the 95 %% intervals (default 1000)")
    parser.add_argument("--stability-sizes", type=_sizes, metavar="N1,N2,...",
                        default=SIZES, help="subsample sizes of the stability curves "
                        f"(default {','.join(map(str, SIZES))}; the full size is added)")
    parser.add_argument("--stability-boot", type=int, default=200, metavar="N",
                        help="bootstrap subsamples per size (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--out", default="report", metavar="DIR",
                        help="folder (or URL) to write (default ./report)")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of --out that are not an earlier report's")
    options.add_mixed_settings(parser)


# How the report's files start: an existing file that starts otherwise is a user's, not
# replaced without --overwrite (a CSV table is the report's when its Markdown twin is).
REPORT_MD = b"# Which explainer can I trust?"
SIGNATURES = {".md": b"|", ".png": b"\x89PNG", ".svg": b"<?xml"}


def check_out(out: str, *, overwrite: bool, storage_options: dict | None) -> None:
    """Before the work: `out` may receive a report (OutputError otherwise). Its report.md,
    tables/ and figures/ hold only an earlier report's files, unless `overwrite`."""
    import posixpath

    from dina_datasets import storage
    from dina_datasets.cli import OutputError, _head, check_outputs

    check_outputs({storage.join(out, "report.md"): REPORT_MD}, overwrite=overwrite,
                  storage_options=storage_options, folder=out)
    fs, root = storage.filesystem(out, storage_options)
    if overwrite or fs.isfile(posixpath.join(root, "report.md")) or not fs.isdir(root):
        return  # an earlier report (report.md is written last), or a new folder
    for sub in ("tables", "figures"):
        folder = posixpath.join(root, sub)
        found = set(fs.find(folder)) if fs.isdir(folder) else set()
        for path in sorted(found):
            stem, ext = posixpath.splitext(path)
            url = storage.join(out, sub, posixpath.relpath(path, folder))
            if ext == ".csv" and sub == "tables":
                ours = f"{stem}.md" in found and _head(
                    storage.join(out, sub, posixpath.relpath(f"{stem}.md", folder)), 1,
                    storage_options) == SIGNATURES[".md"]
            elif ext in SIGNATURES:
                ours = _head(url, len(SIGNATURES[ext]), storage_options) == SIGNATURES[ext]
            else:
                continue
            if not ours:
                raise OutputError(f"{url} exists and is not an output of `dina report`: "
                                  "refusing to replace it; pass --overwrite to replace it, "
                                  "or choose another --out")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.analysis import cost, scores
    from dina_datasets.analysis.report import write_report
    from dina_datasets.analysis.stats.equivalence import check_margin
    from dina_datasets.errors import check_positive_int

    check_margin(args.equivalence_margin, args.margin_units)
    options.check_map_sample(args)
    for name in ("n_boot", "stability_boot"):
        check_positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    check_out(args.out, overwrite=args.overwrite, storage_options=args.storage_options)
    show = not args.no_progress and sys.stderr.isatty()

    def say(text: str) -> None:
        if show:
            print(f"  {text}", file=sys.stderr)

    def report(table: str, cost_frame=None):
        from dina_datasets.demo.validity import planted_if_present

        planted = planted_if_present(table, args.filters,  # when Planted configs are there
                                     storage_options=args.storage_options)
        maps_url = options.maps_url(args)
        return write_report(table, args.out, filters=args.filters, alpha=args.alpha,
                            margin=args.equivalence_margin, margin_units=args.margin_units,
                            maps_url=maps_url, map_sample=args.map_sample,
                            alpha_cd=args.alpha_cd, n_boot=args.n_boot,
                            sizes=args.stability_sizes, stability_boot=args.stability_boot,
                            seed=args.seed, figures=not args.no_figures, cost=cost_frame,
                            storage_options=args.storage_options, say=say,
                            planted=planted,
                            allow_mixed_settings=args.allow_mixed_settings or None)

    if args.scores:
        made = report(args.scores)
    else:
        with tempfile.TemporaryDirectory(prefix="dina-scores-") as folder:
            path = os.path.join(folder, "scores.parquet")
            scores.build(args.data_url, path, configs=args.configs,
                         imagenet_json=args.imagenet_json,
                         storage_options=args.storage_options, progress=show)
            # the cost records beside the maps and scores (`dina generate`, `dina evaluate`)
            # add the cost-vs-quality section; without them there is none
            rows = cost.collect(args.data_url, args.storage_options)
            made = report(path, cost.report_frame(rows) if any(
                r.kind == "generate" for r in rows) else None)
    print(f"{args.out}: report.md, {len(made.files) - 1} tables and figures")
    return 0
