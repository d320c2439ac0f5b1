"""The steps that answer questions: the leaderboard (with the planted model's verdict),
pictures of the maps, the statistics report, and the commands to go further."""

from __future__ import annotations

import os

from dina_datasets.demo.session import Demo, DemoResult


def leaderboard(demo: Demo) -> None:
    from dina_datasets import storage
    from dina_datasets.analysis.leaderboard import collect

    demo.show("leaderboard", "--data-url", demo.bucket, "--out", demo.out)
    board = collect(demo.bucket)
    demo.say(board.text())
    if demo.settings.planted_explainers:
        from dina_datasets.demo import planted

        demo.say(planted.verdict(board))
    for suffix, content in (("csv", board.csv()), ("md", board.markdown()),
                            ("png", board.png())):
        path = os.path.join(demo.out, f"leaderboard.{suffix}")
        with storage.atomic_write(path, "wb") as handle:
            handle.write(content if isinstance(content, bytes) else content.encode())
        demo.result.tables.append(path)


def pictures(demo: Demo) -> None:
    from dina_datasets.viz import figures

    s = demo.settings
    rows_of = [(m, s.explainers) for m in s.models]
    if s.planted_explainers:
        from dina_datasets.demo import planted

        rows_of.append((planted.NAME, s.planted_explainers))
    indices = list(range(len(demo.result.images)))  # as many rows as photographs
    for model, explainers in rows_of:
        configs = [f"{model}-{e}" for e in explainers]
        path = os.path.join(demo.out, "figures", f"{model}.png")
        demo.show("show", *configs, "--index", *indices, "--data-url", demo.bucket,
                  "--images", demo.images_of(model), "--out", path)
        rows = figures.load_panels(configs, indices, data_url=demo.bucket,
                                   images=demo.images_of(model))
        demo.result.pictures.append(figures.draw(rows, path))


def report(demo: Demo) -> None:
    from dina_datasets.analysis import scores
    from dina_datasets.analysis.report import markdown_table, write_report
    from dina_datasets.demo.validity import planted_if_present

    table = os.path.join(demo.out, "scores.parquet")
    folder = os.path.join(demo.out, "report")
    demo.show("scores", "--data-url", demo.bucket, "--out", table)
    demo.say("  " + scores.build(demo.bucket, table).summary())
    demo.show("report", "--scores", table, "--maps-url", demo.bucket, "--out", folder)
    # as `dina report` does: the maps checked, and the planted model's metric unit test
    made = write_report(table, folder, maps_url=demo.bucket,
                        planted=planted_if_present(table))
    demo.say("  " + markdown_table(made.frames["leaders"]).replace("\n", "\n  "))
    for row in made.frames["degenerate"].itertuples():
        demo.say(f"  degenerate, not ranked: {row.model}-{row.explainer} under {row.metric} "
                 f"({row.reason})")
    demo.say(f"  {len(made.files)} files; read {os.path.join(folder, 'report.md')}")
    demo.result.tables.append(os.path.join(folder, "report.md"))


def next_steps(result: DemoResult) -> list[str]:
    """The closing lines of `dina demo`: where everything is, and commands to go further
    (each runs as printed)."""
    demo = Demo(None, result)  # type: ignore[arg-type]  # only its paths and command()
    from dina_datasets.demo import planted

    config = next((c for c in result.configs if c.startswith(f"{planted.NAME}-")),
                  result.configs[0] if result.configs else "CONFIG")
    model = config.split("-", 1)[0]
    lines = [f"  images       {len(result.images)} photographs in {demo.images}"
             + (f" (and the planted model's crops in {demo.planted_images})"
                if result.registry else ""),
             f"  maps         {len(result.configs)} configs in the bucket layout under "
             f"{demo.bucket} ({', '.join(result.configs)})",
             f"  scores       {result.score_files} score files beside the maps",
             f"  hub export   {result.out}/hub (Parquet + README.md, loads with stock datasets)",
             "  leaderboard  " + ", ".join(result.tables),
             "  pictures     " + ", ".join(result.pictures)]
    if result.registry:
        lines.append(f"  registry     {result.registry} (the planted model, for any process)")
    lines += ["Weights were random (offline). Next: one map over its image, or the README's "
              "quick start:",
              "  " + demo.command("show", config, "--index", 0, "--data-url", demo.bucket,
                                  "--images", demo.images_of(model), "--out",
                                  os.path.join(result.out, "figures", "one.png"))]
    scores = os.path.join(result.out, "scores.parquet")
    lines += ["See the maps beside their images and scores in the explorer:",
              "  " + demo.command("explore", "--data-url", demo.bucket, "--images",
                                  demo.image_list if result.registry else demo.images,
                                  *(["--scores", scores] if os.path.exists(scores) else []))]
    return lines
