"""What the commands print (issue 22, item 16), run as subprocesses with stderr to a pipe:
no cuInit error on a machine without an NVIDIA driver, progress lines when stderr is not a
terminal, and an interrupt that says how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_bucket

from dina_datasets import Layout
from dina_datasets.runs.parts import parts_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dina(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from dina_datasets.cli import main; "
            "sys.exit(main())", *argv]


def environment() -> dict:
    """The environment of a user's shell: no test-only settings that quiet TensorFlow."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    for name in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    return env


def test_a_tensorflow_evaluation_prints_no_cuinit_error_and_logs_its_progress(toy, tmp_path):
    pytest.importorskip("tensorflow")
    from dina_datasets.registry import load_registry

    load_registry(toy.registry)
    root = str(tmp_path / "bucket")
    make_bucket(root, ["Tiny-Saliency"], n=12, scores=False, size=32)  # 12 toy images
    command = toy.command("evaluate", "--model", "Tiny", "--explainer", "Saliency",
                          "--data-url", root, "--images", toy.images, "--assume-order",
                          "--weights", "none", "--metrics", "Deletion", "--metric-param",
                          "Deletion.nb_steps=4", "--batch-size", "2", "--part-size", "2",
                          "--progress-interval", "0.05")
    env = environment()
    env["PYTHONPATH"] = os.pathsep.join([str(toy.root), env["PYTHONPATH"]])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "cuInit" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("Tiny-Saliency:") and "12/12" in line for line in lines), lines
    assert "\r" not in done.stderr
    assert "Deletion: 12 scores" in done.stdout


def test_progress_lines_come_from_the_clock_not_from_the_updates(capsys):
    """With stderr not a terminal a line is printed every interval by a clock: an update
    must not print one too (two lines a moment apart in each interval, as seen before)."""
    from dina_datasets.runs.progress import progress

    with progress(3600.0, 100, "cell", "map") as bar:
        bar.start_t -= 7200  # as if two intervals had passed since the first line
        bar.last_print_t -= 7200
        bar.update(1)
        bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines  # the first and the last, none from the updates
    assert "0/100" in lines[0] and "2/100" in lines[1], lines


def test_the_stderr_filter_drops_only_the_line_it_names():
    code = ("import os\nfrom dina_datasets.generation.runtime import dropping\n"
            "with dropping(b'failed call to cuInit'):\n"
            "    os.write(2, b'E cuda.cc:51] failed call to cuInit: CUDA error (303)\\n')\n"
            "    os.write(2, b'E real: a real error\\n')\n"
            "os.write(2, b'after: failed call to cuInit outside the filter\\n')\n")
    done = subprocess.run([sys.executable, "-c", code], env=environment(), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["E real: a real error",
                                        "after: failed call to cuInit outside the filter"]


def test_an_interrupted_evaluation_says_that_a_rerun_resumes(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=3000, scores=False, size=4)
    folder = parts_folder(Layout(root).scores("DinoV2", "Rise", "Sparseness"))
    command = dina("evaluate", "--model", "DinoV2", "--explainer", "Rise", "--data-url", root,
                   "--metrics", "Sparseness", "--part-size", "1")
    # Ctrl-C handled as in a user's shell even when pytest runs as a background job (SIGINT
    # ignored): restored in the child's own code, not by a preexec_fn, which forks this
    # process (holding TensorFlow's and Ray's threads: the child crashed once with -11)
    command[2] = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " \
        + command[2]
    proc = subprocess.Popen(command, env=environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (os.path.isdir(folder) and any(n.startswith("part-")
                                             for n in os.listdir(folder))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part was scored in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "re-run the same command to resume" in err, err


RETRACING = '''
import numpy as np, tensorflow as tf
from dina_datasets.metrics import build
inputs = tf.keras.Input((16, 16, 3))
x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs))
model = tf.keras.Model(inputs, tf.keras.layers.Dense(5, activation="softmax")(x))
rng = np.random.default_rng(0)
for n in (2, 3, 2, 3):  # four small cells, as in the demo
    images = rng.random((n, 16, 16, 3), dtype=np.float32)
    targets = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    maps = rng.random((n, 16, 16, 1), dtype=np.float32)
    for name in ("Deletion", "Insertion"):
        build(name, model, batch_size=4, nb_steps=2)(images, targets, maps)
print("scored")
'''


def test_scoring_several_cells_does_not_retrace_the_model():
    pytest.importorskip("tensorflow")
    env = environment()
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the retracing warning is a Python log, shown anyway
    done = subprocess.run([sys.executable, "-c", RETRACING], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "scored" in done.stdout, done.stderr[-3000:]
    assert "retracing" not in done.stderr, done.stderr[-3000:]
