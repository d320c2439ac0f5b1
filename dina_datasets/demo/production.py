"""The steps that make the demo's data: images, maps (`dina generate`) and their scores
(`dina evaluate`), for the real architectures and the planted-truth model."""

from __future__ import annotations

from dina_datasets.demo.photos import write_crops, write_image_list, write_photos
from dina_datasets.demo.session import Demo


def make_images(demo: Demo) -> None:
    """The photographs, and the planted model's crops of them."""
    demo.result.images = write_photos(demo.images, demo.settings.photos)
    if demo.settings.planted_explainers:
        from dina_datasets.demo import planted

        crops = write_crops(demo.planted_images, demo.settings.planted_images, planted.SIZE)
        write_image_list(demo.image_list, demo.result.images + crops)
    demo.say("  WEIGHTS ARE RANDOM: there is no network here, so the models are built with "
             "`--weights none` (seeded random initialisation). Maps and scores show that the "
             "pipeline works, not what a trained model attends to. On a machine with network, "
             "use `--weights pretrained` (kecam downloads them) or `--weights FILE`.")


def register_planted(demo: Demo) -> None:
    """Register the planted model from a registry file written beside the data, as a user's
    model would be; every command printed afterwards passes that file."""
    from dina_datasets.demo import planted
    from dina_datasets.registry import load_registry, write_registry

    planted.register()
    demo.result.registry = write_registry(demo.registry, models=[planted.NAME])
    load_registry(demo.result.registry)
    demo.say(f"  the planted model is a contributed one: {demo.result.registry} registers it "
             "in any process (`dina COMMAND --registry FILE`; every command below passes it)")


def generate_maps(demo: Demo) -> None:
    import warnings

    from dina_datasets.generation.pipeline import generate

    s = demo.settings
    pairs = [(m, e) for m in s.models for e in s.explainers]
    if s.planted_explainers:
        from dina_datasets.demo import planted

        register_planted(demo)
        pairs += [(planted.NAME, e) for e in s.planted_explainers]
    for model, explainer in pairs:
        images = demo.images_of(model)
        demo.show("generate", "--model", model, "--explainer", explainer, "--images", images,
                  "--out", demo.bucket, "--weights", "none", "--batch-size", s.batch_size)
        with warnings.catch_warnings():  # the count is in the summary
            warnings.simplefilter("ignore")
            made = generate(model, explainer, images, demo.bucket, weights="none",
                            batch_size=s.batch_size, progress=True)
        demo.say("  " + made.summary().replace("\n", "\n  "))
        demo.result.configs.append(f"{model}-{explainer}")


# Wall time of the evaluate step over that of the generate step, measured in whole runs on
# this project's 2-core machine (both steps are CPU-bound, so the ratio holds under load):
# FULL 220 s / 126 s and 468 s / 246 s (2 December 2026, the planted model on 64 crops),
# QUICK 96 s / 157 s. Re-explaining (randomization metrics) is what makes the first larger.
EVALUATE_PER_GENERATE = {"randomization": 1.8, "other": 0.61}


def estimate_evaluate(demo: Demo) -> float:
    """Seconds the evaluate step should take here: the generate step's time on this machine,
    times the ratio measured in earlier runs."""
    from dina_datasets import catalog

    randomization = any(catalog.metric(m).family == "randomization"
                        for m in demo.settings.metrics)
    ratio = EVALUATE_PER_GENERATE["randomization" if randomization else "other"]
    return demo.result.seconds.get("generate", 0.0) * ratio


def metrics_of(demo: Demo, model: str) -> tuple[str, ...]:
    """The metrics the demo computes for `model`'s maps."""
    from dina_datasets.demo import planted

    s = demo.settings
    return s.planted_metrics if model == planted.NAME else s.metrics


def evaluate_maps(demo: Demo) -> None:
    from dina_datasets.metrics.evaluation import evaluate

    s = demo.settings
    demo.say(f"  estimate: about {max(1, round(estimate_evaluate(demo) / 60))} min (the "
             "generate step's time here times the ratio measured in earlier runs)")
    for config in demo.result.configs:
        model, explainer = config.split("-", 1)
        metrics = metrics_of(demo, model)
        params = {m: kv for m, kv in s.metric_params.items() if m in metrics}
        demo.show("evaluate", "--model", model, "--explainer", explainer, "--metrics",
                  *metrics, *[w for m, kv in params.items() for k, v in kv.items()
                              for w in ("--metric-param", f"{m}.{k}={v}")],
                  "--data-url", demo.bucket, "--images", demo.images_of(model),
                  "--weights", "none", "--batch-size", 4 * s.batch_size)
        scored = evaluate(model, explainer, metrics, data_url=demo.bucket,
                          images=demo.images_of(model), weights="none",
                          batch_size=4 * s.batch_size, metric_params=params, progress=True)
        demo.result.score_files += len(scored.written)
