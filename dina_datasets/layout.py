"""The bucket layout: where a cell's explanations, scores and preprocessed inputs live.

One template per kind of file, configurable, never hard-wired twice (FACTS.md §1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dina_datasets.recordio.storage import join

DEFAULT_DATA_URL = os.environ.get("DINA_DATA_URL", "gs://xai-deel")
EXPLANATIONS = "{model}/{explainer}/explanations.tfrecord"
SCORES = "{model}/{explainer}/{metric}_scores.json"
PREPROCESS = "{model}/preprocess_dataset.tfrecord"


@dataclass(frozen=True)
class Layout:
    """URLs of DINA files under a bucket-shaped root (`gs://xai-deel` by default)."""

    root: str = DEFAULT_DATA_URL
    explanations_template: str = EXPLANATIONS
    scores_template: str = SCORES
    preprocess_template: str = PREPROCESS

    def explanations(self, model: str, explainer: str) -> str:
        return join(self.root, self.explanations_template.format(model=model,
                                                                 explainer=explainer))

    def scores(self, model: str, explainer: str, metric: str) -> str:
        return join(self.root, self.scores_template.format(model=model, explainer=explainer,
                                                           metric=metric))

    def preprocess(self, model: str) -> str:
        return join(self.root, self.preprocess_template.format(model=model))
