"""One run of the demo: its settings, its folder (claimed with a marker file), what it made so
far, and the `dina ...` commands it prints (each runs as printed, in any shell and process:
the planted model's registry file is passed to every command)."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from dina_datasets.demo.settings import Settings
from dina_datasets.errors import ConfigError

MARKER = ".dina-demo"
REPLACED = ("bucket", "hub")  # what a new run replaces inside its own folder
REGISTRY = "registry.toml"  # the planted model's registry file, beside the data


@dataclass
class DemoResult:
    """What the demo made, and where."""

    out: str
    images: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    score_files: int = 0
    pictures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    registry: str | None = None  # the registry file of the planted model, when it ran
    commands: list[str] = field(default_factory=list)  # every `dina ...` command printed


@dataclass
class Demo:
    """One run: its settings, folders, what it made so far, and where it speaks."""

    settings: Settings
    result: DemoResult
    say: Callable[[str], None] = print

    @property
    def out(self) -> str:
        return self.result.out

    @property
    def images(self) -> str:
        return os.path.join(self.out, "images")

    @property
    def planted_images(self) -> str:
        """The planted model's images (32x32 crops of the photographs)."""
        return os.path.join(self.out, "planted_images")

    @property
    def image_list(self) -> str:
        """Every image of the run (photographs and crops) in one list, for the explorer."""
        return os.path.join(self.out, "images.json")

    @property
    def bucket(self) -> str:
        return os.path.join(self.out, "bucket")

    @property
    def registry(self) -> str:
        return os.path.join(self.out, REGISTRY)

    def images_of(self, model: str) -> str:
        """The images folder that `model`'s maps explain."""
        from dina_datasets.demo import planted

        return self.planted_images if model == planted.NAME else self.images

    def command(self, *argv: str) -> str:
        """`dina ARGV` as a shell line, with `--registry` when the run registered the planted
        model (so that the line works in a new process); recorded in `result.commands`."""
        words = ["dina", *map(str, argv)]
        if self.result.registry:
            words += ["--registry", self.result.registry]
        line = shlex.join(words)
        self.result.commands.append(line)
        return line

    def show(self, *argv: str) -> None:
        """Print `$ dina ARGV` (see `command`), the command a step is about to run."""
        self.say(f"  $ {self.command(*argv)}")


@dataclass(frozen=True)
class Step:
    """One step: a short name (for the timings), its title, and what it does."""

    name: str
    title: Callable[[Demo], str]
    run: Callable[[Demo], None]


def claim_folder(out: str) -> str:
    """`out` as an absolute path, made ready for the demo: created with a MARKER file, or
    already the demo's (MARKER present) or empty; ConfigError for anything else."""
    out = os.path.abspath(out)
    marker = os.path.join(out, MARKER)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--out {out} is a file: give a new folder (or an earlier demo's)")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(marker):
        raise ConfigError(f"--out {out} exists and was not made by `dina demo` (no {MARKER} "
                          "file in it): the demo replaces its own bucket/ and hub/, so it only "
                          "writes into a new or empty folder, or an earlier demo's")
    os.makedirs(out, exist_ok=True)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write("made by `dina demo`: a new run replaces bucket/ and hub/ here\n")
    for name in REPLACED:
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    return out
