"""The `dina` command line: one module per command, imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from dina_datasets.errors import DinaError, DinaWarning

# name -> (module, one-line help). Each module has add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "configs": ("dina_datasets.cli.configs", "list the DINA configs and their sizes"),
    "demo": ("dina_datasets.cli.demo", "run the whole DINA loop offline on the embedded default"),
    "export": ("dina_datasets.cli.export", "export configs as a Hub dataset repository (Parquet)"),
    "push": ("dina_datasets.cli.push", "upload an exported folder to the Hugging Face Hub"),
    "subset": ("dina_datasets.cli.subset", "the same records of several configs as a small DINA"),
    "generate": ("dina_datasets.cli.generate", "compute attribution maps for new entries"),
    "merge": ("dina_datasets.cli.merge", "join generated shards into explanations.tfrecord"),
    "evaluate": ("dina_datasets.cli.evaluate", "compute metric scores of a config"),
    "leaderboard": ("dina_datasets.cli.leaderboard", "per model and metric: means, ranks and "
                    "paired verdicts of every score file"),
    "scores": ("dina_datasets.cli.scores", "every per-image score in one Parquet table"),
    "report": ("dina_datasets.cli.report", "statistics tables and figures: which explainer "
               "can I trust?"),
    "reliability": ("dina_datasets.cli.reliability", "can I trust the metric? graded cards"),
    "cost": ("dina_datasets.cli.cost", "seconds per image of generation and metrics, and "
             "cost vs quality"),
    "show": ("dina_datasets.cli.show", "draw maps over their images"),
    "explore": ("dina_datasets.cli.explore", "a local web app: maps beside images and scores"),
    "align": ("dina_datasets.cli.align", "recover which image each published record explains"),
}


# Top-level module of an optional dependency -> the extra of pyproject.toml that installs it
# (add a row with each new extra).
EXTRAS = {"tensorflow": "generate", "tf_keras": "generate", "keras_cv_attention_models":
          "generate", "xplique": "generate", "skimage": "generate", "matplotlib": "viz",
          "PIL": "viz", "torch": "torch", "jax": "jax", "duckdb": "stats", "scipy": "stats",
          "scikit_posthocs": "stats", "statsmodels": "stats", "pandas": "stats",
          "gradio": "explore", "gradio_client": "explore", "ray": "ray", "grain": "grain"}


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The line to print for an optional dependency that is not installed, else None."""
    top = (err.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (f"this needs {top}, which is not installed: install the `{extra}` extra, "
            f"e.g. pip install 'dina-datasets[{extra}]' (or `uv sync --extra {extra}` in a "
            "checkout)")


def os_error_line(err: OSError) -> str:
    """One line for a file-system error that reached the command line."""
    name = err.filename
    if isinstance(err, FileExistsError) and name and os.path.isfile(name):
        return f"{name} is a file, not a folder: give a folder (or a new path)"
    if isinstance(err, NotADirectoryError) and name:
        return f"cannot use {name}: a folder of its path is a file (Not a directory)"
    return f"{err.strerror or err}" + (f": {name}" if name else "")


def _warning_line(command: str, other: Any):
    """A `warnings.showwarning` that prints the package's warnings as one line."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DinaWarning):
            print(f"dina {command}: warning: {message}", file=file or sys.stderr)
        else:
            other(message, category, filename, lineno, file, line)
    return show


PARQUET = b"PAR1"  # the first bytes of a Parquet file
PNG = b"\x89PNG\r\n\x1a\n"


class OutputError(DinaError, FileExistsError):
    """An output path the command will not write: a user's file of another kind, a folder
    where a file goes, a folder that cannot be written."""


def _head(url: str, size: int, storage_options: dict[str, Any] | None) -> bytes:
    from dina_datasets import storage

    fs, path = storage.filesystem(url, storage_options)
    with fs.open(path, "rb") as handle:
        return handle.read(size)


def _check_writable(path: str) -> None:
    """A local `path` can be created: its nearest existing ancestor is a writable folder."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {parent} is not writable")


def check_outputs(targets: dict[str, bytes], *, overwrite: bool,
                  storage_options: dict[str, Any] | None, folder: str | None = None) -> None:
    """Before a command works or prints: each URL of `targets` may be written. An existing
    file there must start with its bytes (a previous output of the same kind: b"PAR1" for
    Parquet...) unless `overwrite`; a folder there, a `folder` (of the outputs) that is a
    file, or a local folder that cannot be written is an OutputError."""
    from dina_datasets import storage

    if folder is not None:
        fs, path = storage.filesystem(folder, storage_options)
        if fs.isfile(path):
            raise OutputError(f"--out {folder} is a file, not a folder (this command writes "
                              f"{', '.join(os.path.basename(t) for t in targets)} into it): "
                              "give a folder (or a new path)")
    for url, signature in targets.items():
        fs, path = storage.filesystem(url, storage_options)
        if storage.is_local(fs):
            _check_writable(path)
        if fs.isdir(path):
            raise OutputError(f"cannot write {url}: it is a folder")
        if overwrite or not fs.exists(path):
            continue
        if _head(url, len(signature), storage_options) != signature:
            raise OutputError(f"{url} exists and is not an output of this command (it does "
                              f"not start with {signature[:16]!r}): refusing to replace it; "
                              "pass --overwrite to replace it, or choose another --out")


def write_outputs(out: str, outputs: dict[str, bytes],
                  storage_options: dict[str, Any] | None) -> None:
    """Write each named output under the folder or URL `out` (atomically) and say where."""
    from dina_datasets import storage

    for name, data in outputs.items():
        url = storage.join(out, name)
        with storage.atomic_write(url, "wb", storage_options) as handle:
            handle.write(data)
        print(f"wrote {url}")


def storage_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE of `--storage-option`; VALUE is JSON when it parses, else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. token=anon), got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dina` console command; exit code 2 on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from dina_datasets._version import __version__

    parser = argparse.ArgumentParser(prog="dina", description="DINA: DEEL ImageNet Attributions"
                                     " without TensorFlow on the read path.")
    parser.add_argument("--version", action="version", version=f"dina-datasets {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="FILE", action="append", default=[],
                        help="a registry file of contributed models/explainers (repeatable)")
    common.add_argument("--storage-option", metavar="KEY=VALUE", action="append", default=[],
                        type=storage_option, dest="storage_option_pairs",
                        help="an fsspec storage option for every URL of the command, e.g. "
                        "token=/path/key.json or project=my-project (repeatable; a VALUE that "
                        "parses as JSON is taken as such)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    module = None
    for name, (module_name, text) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text, parents=[common])
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
    args = parser.parse_args(argv)
    args.storage_options = dict(args.storage_option_pairs) or None
    prefix = f"dina {args.command}: error:"
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line(args.command, warnings.showwarning)
        try:
            if args.registry:
                from dina_datasets.registry import load_registry

                for path in args.registry:
                    load_registry(path)
            code = int(module.run(args) or 0)
            sys.stdout.flush()
            return code
        except DinaError as err:
            print(f"{prefix} {err}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `dina configs | head`: the reader had enough
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except ModuleNotFoundError as err:
            line = missing_extra(err)
            if line is None:
                raise
            print(f"{prefix} {line}", file=sys.stderr)
            return 2
        except OSError as err:  # an --out that is a file, a folder we may not write...
            print(f"{prefix} {os_error_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"dina {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
