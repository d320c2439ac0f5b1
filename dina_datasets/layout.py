"""The bucket layout: where a cell's explanations, scores and preprocessed inputs live.

One template per kind of file, configurable, never hard-wired twice (FACTS.md §1):

- `{model}/{explainer}/explanations.tfrecord` (and its sidecar index `....index.json`);
- `{model}/{explainer}/{metric}_scores.json`: scores with the published softmax head;
- `{model}/{explainer}/{metric}_scores.{activation}.json`: the same metric computed with
  another output activation (`sigmoid`, `logits`); such a name never matches the published
  pattern, since it does not end in `_scores.json`. Only the metrics that run the model have
  such files (`catalog.MetricSpec.depends_on_activation`; not Sparseness and Complexity);
- `{model}/{explainer}/{metric}_cost.{activation}.json`: what `dina evaluate` spent on that
  score file (images, seconds, seconds per image, batch size, device, library versions;
  format in `dina_datasets.runs.cost`); it never matches the score patterns above. The cost of
  generating the maps is in the generation manifest beside them,
  `explanations.tfrecord.manifest.json` (key `cost`, one entry per part);
- `{model}/{explainer}/{metric}_settings.{activation}.json`: the settings that score file was
  computed with (metric parameters, seed, weights, versions, the maps' signature; format in
  `dina_datasets.runs.settings`); a score file without one is "published";
- `{model}/preprocess_dataset.tfrecord`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dina_datasets.errors import ConfigError
from dina_datasets.storage import join

DEFAULT_DATA_URL = os.environ.get("DINA_DATA_URL", "gs://xai-deel")
EXPLANATIONS = "{model}/{explainer}/explanations.tfrecord"
SCORES = "{model}/{explainer}/{metric}_scores.json"
SCORES_ACTIVATION = "{model}/{explainer}/{metric}_scores.{activation}.json"
COST = "{model}/{explainer}/{metric}_cost.{activation}.json"
SETTINGS = "{model}/{explainer}/{metric}_settings.{activation}.json"
DEFAULT_ACTIVATION = "softmax"
ACTIVATIONS = ("softmax", "sigmoid", "logits")
PREPROCESS = "{model}/preprocess_dataset.tfrecord"


def check_activation(activation: str) -> str:
    """`activation` if it is one of ACTIVATIONS (case-insensitive), else a ConfigError."""
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return activation.lower()
    raise ConfigError(f"unknown output activation {activation!r}; valid: "
                      f"{', '.join(ACTIVATIONS)} ({DEFAULT_ACTIVATION} is the published one)")


@dataclass(frozen=True)
class Layout:
    """URLs of DINA files under a bucket-shaped root (`gs://xai-deel` by default)."""

    root: str = DEFAULT_DATA_URL
    explanations_template: str = EXPLANATIONS
    scores_template: str = SCORES
    scores_activation_template: str = SCORES_ACTIVATION
    cost_template: str = COST
    settings_template: str = SETTINGS
    preprocess_template: str = PREPROCESS

    def explanations(self, model: str, explainer: str) -> str:
        return join(self.root, self.explanations_template.format(model=model,
                                                                 explainer=explainer))

    def scores(self, model: str, explainer: str, metric: str,
               activation: str = DEFAULT_ACTIVATION) -> str:
        activation = check_activation(activation)
        template = (self.scores_template if activation == DEFAULT_ACTIVATION
                    else self.scores_activation_template)
        return join(self.root, template.format(model=model, explainer=explainer,
                                               metric=metric, activation=activation))

    def cost(self, model: str, explainer: str, metric: str,
             activation: str = DEFAULT_ACTIVATION) -> str:
        """The cost record of the score file `scores(model, explainer, metric, activation)`."""
        return join(self.root, self.cost_template.format(
            model=model, explainer=explainer, metric=metric,
            activation=check_activation(activation)))

    def settings(self, model: str, explainer: str, metric: str,
                 activation: str = DEFAULT_ACTIVATION) -> str:
        """The settings of the score file `scores(model, explainer, metric, activation)`."""
        return join(self.root, self.settings_template.format(
            model=model, explainer=explainer, metric=metric,
            activation=check_activation(activation)))

    def preprocess(self, model: str) -> str:
        return join(self.root, self.preprocess_template.format(model=model))
