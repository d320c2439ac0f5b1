"""What the demo computes: the photographs, models, explainers and metrics of the embedded
default, and of the planted-truth model (`FULL`, and `QUICK` for `dina demo --quick`)."""

from __future__ import annotations

from dataclasses import dataclass

# scikit-image sample photographs (public domain or CC0; see the dataset card).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
MODELS = ("EfficientNetV2", "ResNet50")
EXPLAINERS = ("Saliency", "GradientInput", "GradCAM", "GradCAMPP")
# Fidelity, complexity and randomization.
METRICS = ("Deletion", "Sparseness", "Complexity", "RandomLogitMetric")
# Deletion/Insertion steps: the published scores use 200 (the catalog's); 20 keep the
# demo's forward passes (images x steps) ten times fewer, on the same definition.
NB_STEPS = 20
# The planted-truth model (dina_datasets.demo.planted, 32x32): its right answer is known, so its
# leaderboard must rank the gradient maps above the reference explainers.
PLANTED = ("Saliency", "IntegratedGradients", "Sobel", "RandomExp")
# Its metrics: Deletion and Insertion reward the region by construction.
PLANTED_METRICS = ("Deletion", "Insertion", "Sparseness", "Complexity")
# Its images: 32x32 crops of the photographs. 64 pairs are enough for the paired test
# (Wilcoxon signed-rank, Holm over the pairs of a model and metric) to call the gradient
# maps better than RandomExp at alpha 0.01 (with 4 images the smallest two-sided p is
# 0.125); a 32x32 input costs ~50 times less than a 224x224 one.
PLANTED_IMAGES = 64


@dataclass(frozen=True)
class Settings:
    """What the demo computes."""

    models: tuple[str, ...] = MODELS
    explainers: tuple[str, ...] = EXPLAINERS
    metrics: tuple[str, ...] = METRICS
    photos: tuple[str, ...] = PHOTOS
    planted_explainers: tuple[str, ...] = PLANTED  # explainers of the planted-truth model
    planted_metrics: tuple[str, ...] = PLANTED_METRICS
    planted_images: int = PLANTED_IMAGES
    nb_steps: int = NB_STEPS
    batch_size: int = 8

    @property
    def metric_params(self) -> dict[str, dict[str, int]]:
        """{metric: {"nb_steps": ...}} for Deletion and Insertion where they are computed."""
        computed = {*self.metrics, *(self.planted_metrics if self.planted_explainers else ())}
        return {m: {"nb_steps": self.nb_steps} for m in ("Deletion", "Insertion")
                if m in computed}


FULL = Settings()
# `dina demo --quick`: one model, a 3-channel and a 1-channel explainer, no re-explaining;
# the planted model's Saliency against RandomExp (32x32 inputs: seconds).
QUICK = Settings(models=("ResNet50",), explainers=("Saliency", "GradCAM"),
                 metrics=("Deletion", "Sparseness", "Complexity"), photos=PHOTOS[:2],
                 nb_steps=10, planted_explainers=("Saliency", "RandomExp"))
