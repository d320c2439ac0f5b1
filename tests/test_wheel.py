"""The package as a user installs it: a built wheel in a fresh environment, run from a folder
outside the checkout (no source tree to lean on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_bucket

REPO = Path(__file__).resolve().parent.parent


def uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not os.path.exists(found):
        pytest.fail("uv not found: run `make env` (docs/getting-started.md) first")
    return found


@pytest.mark.slow
def test_installed_wheel_exports_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(dist.glob("dina_datasets-*.whl"))
    env_dir = tmp_path / "env"
    run = {"capture_output": True, "text": True, "timeout": 600}
    made = subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(env_dir)], **run)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    # the read path's dependencies only: what `pip install dina_datasets-*.whl` brings
    installed = subprocess.run([uv(), "pip", "install", "-q", "--python", str(python),
                                str(wheel)], **run)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = str(elsewhere / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=3)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_DATASETS_OFFLINE"] = "1"
    dina = env_dir / "bin" / "dina"
    where = subprocess.run([str(python), "-c",
                            "import dina_datasets; print(dina_datasets.__file__)"],
                           cwd=elsewhere, env=env, **run)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr
    exported = subprocess.run([str(dina), "export", "DinoV2-Rise", "--data-url", root,
                               "--out", str(elsewhere / "hub")], cwd=elsewhere, env=env, **run)
    assert exported.returncode == 0, exported.stderr
    card = (elsewhere / "hub" / "README.md").read_text()
    assert "config_name: DinoV2-Rise" in card
    assert list((elsewhere / "hub" / "DinoV2-Rise").glob("validation-*.parquet"))
