"""Generation of DINA attribution maps: models, images, preprocessing, explainers, runs.

The modules that need TensorFlow, kecam or xplique import them themselves (TensorFlow through
`generation.runtime`, which keeps the console quiet); importing this package only sets the
environment those libraries expect (legacy Keras, quiet logs). A run is `generation.run`
(prepare, finish), its parts are written by `generation.writer`, and `generation.pipeline`
runs the whole in one process; `generation.merge` and `generation.run` work without
TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
