"""Generation of DINA attribution maps: models, images, preprocessing, explainers, runs.

The modules that need TensorFlow, kecam or xplique import them themselves; importing this
package only sets the environment those libraries expect (legacy Keras, quiet logs).
`dina_datasets.generation.merge` and `.parts` work without TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
