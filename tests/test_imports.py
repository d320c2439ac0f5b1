"""The read path imports no heavy library: one fresh interpreter imports all of it and uses its
light parts; the libraries that only generation, the demo or the CLI's heavy commands need
must not have been imported."""

from __future__ import annotations

import subprocess
import sys

# Modules that must not load while reading records (TF-free record I/O: not even datasets).
RECORDIO = ("dina_datasets", "dina_datasets.recordio", "dina_datasets.recordio.framing",
            "dina_datasets.recordio.proto", "dina_datasets.storage",
            "dina_datasets.recordio.planner", "dina_datasets.recordio.reader",
            "dina_datasets.recordio.records", "dina_datasets.recordio.index",
            "dina_datasets.recordio.fastpath", "dina_datasets.formats", "dina_datasets.layout",
            "dina_datasets.catalog")
NOT_IN_RECORDIO = ("datasets", "torch", "tensorflow", "keras", "tf_keras", "jax", "xplique",
                   "keras_cv_attention_models", "ray", "gradio")
# Random access for DataLoaders and grain: neither torch nor grain until a loader asks.
RANDOM_ACCESS = ("dina_datasets.hf.random_access",)
NOT_IN_RANDOM_ACCESS = ("torch", "grain", "jax", "tensorflow")
# The rest of the read path: the Hugging Face side, the CLI's read commands, the leaderboard,
# figures, scores table, statistics, report, subset, cost, the explorer's package, model-free
# metrics and their evaluation, the registry. (Heavy libraries load inside the functions.)
READ_PATH = ("dina_datasets.hf.builder", "dina_datasets.hf.loading", "dina_datasets.hf.export",
             "dina_datasets.hf.source", "dina_datasets.hf.arrow", "dina_datasets.hf.card",
             "dina_datasets.hf.features", "dina_datasets.hf.readahead",
             "dina_datasets.hf.batches", "dina_datasets.analysis.leaderboard",
             "dina_datasets.viz.figures",
             "dina_datasets.registry", "dina_datasets.metrics.evaluation",
             "dina_datasets.metrics.inputs", "dina_datasets.readahead",
             "dina_datasets.runs.score_parts",
             "dina_datasets.metrics.scorer", "dina_datasets.analysis.scores", "dina_datasets.stats",
             "dina_datasets.analysis.report", "dina_datasets.hf.subset", "dina_datasets.runs.cost",
             "dina_datasets.analysis.cost", "dina_datasets.analysis.table",
             "dina_datasets.explore", "dina_datasets.cli", "dina_datasets.cli.engine",
             *(f"dina_datasets.cli.{c}" for c in ("configs", "export", "push", "show",
                                                   "leaderboard", "evaluate", "merge", "scores",
                                                   "report", "subset", "cost", "explore")))
NOT_IN_READ_PATH = ("tensorflow", "keras", "tf_keras", "jax", "xplique",
                    "keras_cv_attention_models", "ray", "gradio", "duckdb", "matplotlib",
                    "scipy")

TOY = "import tensorflow\ndef tiny(weights='none'):\n    raise AssertionError('built')\n"
REGISTRY = ('[models.Lazy]\nfactory = "dina_imports_toy:tiny"\ninput_size = 8\n'
            'rescale_mode = "tf"\n')

CODE = """
import contextlib, importlib, io, sys
import numpy as np

def loaded(names):
    return [m for m in names if m in sys.modules]

for name in {recordio}:
    importlib.import_module(name)
from dina_datasets import read_explanations, write_explanations
write_explanations({url!r}, np.ones((2, 4, 4, 1), np.float32))
assert [m.shape for m in read_explanations({url!r})] == [(4, 4, 1)] * 2
assert not loaded({not_in_recordio}), ("record I/O", loaded({not_in_recordio}))

for name in {random_access}:
    importlib.import_module(name)
import dina_datasets as dd
dd.RandomAccessDataset
assert not loaded({not_in_random_access}), ("random access", loaded({not_in_random_access}))

for name in {read_path}:
    importlib.import_module(name)
from dina_datasets import DinaBuilder, load_dataset
from dina_datasets.cli import main
from dina_datasets.metrics import Complexity, Sparseness
Sparseness()(np.ones((2, 4, 4, 3)))
Complexity()(np.ones((2, 4, 4)))
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(["configs", "--registry", {registry!r}, "--model", "Lazy"]) == 0
assert "Lazy-Rise" in out.getvalue()
assert "dina_imports_toy" not in sys.modules, "a registry must not import its factories"
assert not loaded({not_in_read_path}), ("read path", loaded({not_in_read_path}))
"""


def test_read_path_imports_no_heavy_library(tmp_path):
    (tmp_path / "dina_imports_toy.py").write_text(TOY)
    (tmp_path / "registry.toml").write_text(REGISTRY)
    code = CODE.format(recordio=RECORDIO, not_in_recordio=NOT_IN_RECORDIO,
                       random_access=RANDOM_ACCESS, not_in_random_access=NOT_IN_RANDOM_ACCESS,
                       read_path=READ_PATH,
                       not_in_read_path=NOT_IN_READ_PATH, url=str(tmp_path / "x.tfrecord"),
                       registry=str(tmp_path / "registry.toml"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


GENERATION = """
import sys
from dina_datasets import catalog
from dina_datasets.generation.explainers import _method
from dina_datasets.generation.runtime import tensorflow

tf = tensorflow()
method = _method(catalog.explainer("Saliency"))
assert method.__module__.startswith("xplique.") and tf.constant(1.0).numpy() == 1.0
assert "torch" not in sys.modules and "jax" not in sys.modules
import jax.numpy as jnp
import torch
assert float(torch.ones(2).sum()) == 2.0 and float(jnp.ones(2).sum()) == 2.0
"""


def test_generation_skips_the_optional_torch_and_jax_imports_of_tensorflow_and_xplique():
    """TensorFlow and xplique load without the PyTorch and JAX that they would import when
    installed (seconds of start-up for every generating process); both import afterwards."""
    import pytest

    pytest.importorskip("tensorflow")
    done = subprocess.run([sys.executable, "-c", GENERATION], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_without_fails_an_import_only_inside_the_block(tmp_path, monkeypatch):
    import pytest

    from dina_datasets.generation.runtime import without

    (tmp_path / "dina_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with without("dina_probe_module", "json"):
        with pytest.raises(ImportError):
            import dina_probe_module
        import json  # already imported: left alone
        assert json.dumps(1) == "1"
    import dina_probe_module

    assert dina_probe_module.VALUE == 1
    sys.modules.pop("dina_probe_module")
