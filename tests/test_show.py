"""`dina show`: maps over their images, alone, in a grid; bad input exits 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dina_datasets as dd
from dina_datasets.cli import main
from dina_datasets.viz import figures, scales


@pytest.fixture
def shown(tmp_path):
    """A bucket with two 224x224 configs whose records name their images, and the images."""
    root, images = str(tmp_path / "bucket"), tmp_path / "images"
    images.mkdir()
    names = ["wide", "tall"]
    Image.new("RGB", (400, 300), (200, 30, 30)).save(images / "wide.png")
    Image.new("RGB", (300, 500), (30, 200, 30)).save(images / "tall.jpg")
    yy, xx = np.mgrid[:224, :224]
    maps = [np.exp(-((yy - 60 - 100 * k) ** 2 + (xx - 112) ** 2) / 500.0) for k in range(2)]
    layout = dd.Layout(root)
    dd.write_explanations(layout.explanations("ResNet50", "Saliency"),
                          [np.stack([m, -m, m], -1).astype(np.float32) for m in maps],
                          image_id=names)
    dd.write_explanations(layout.explanations("ResNet50", "Rise"),
                          [(m[..., None] - 0.2).astype(np.float32) for m in maps],
                          image_id=names)
    return root, str(images)


def test_display_image_is_the_central_crop_the_model_saw(tmp_path):
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 100:] = 255  # right half white
    Image.fromarray(img).save(tmp_path / "half.png")
    shown = figures.display_image(str(tmp_path / "half.png"), 50)
    assert shown.shape == (50, 50, 3)
    # the 95-pixel central square spans columns 52..147: half black, half white
    assert shown[:, :20].max() < 10 and shown[:, -20:].min() > 245


def test_heatmap_reduces_three_channels_and_keeps_sign_of_one():
    three = np.stack([np.ones((4, 4)), -np.ones((4, 4)), 3 * np.ones((4, 4))], -1)
    values, signed = scales.heatmap(three)
    assert values.shape == (4, 4) and not signed and np.allclose(values, 5 / 3)
    one = np.linspace(-1, 1, 16).reshape(4, 4, 1)
    values, signed = scales.heatmap(one)
    assert signed and values.shape == (4, 4) and values.min() == -1


def test_grid_over_images(shown, tmp_path, capsys):
    root, images = shown
    out = tmp_path / "grid.png"
    assert main(["show", "ResNet50-Saliency", "resnet50-rise", "--index", "0", "1",
                 "--data-url", root, "--images", images, "--out", str(out)]) == 0
    assert "2 image(s) x 2 config(s)" in capsys.readouterr().out
    with Image.open(out) as png:
        width, height = png.size
        pixels = np.asarray(png.convert("RGB"))
    assert width > 600 and height > 500
    # the red and green photos show through the overlays
    reds = ((pixels[..., 0] > 150) & (pixels[..., 1] < 90)).sum()
    greens = ((pixels[..., 1] > 150) & (pixels[..., 0] < 90)).sum()
    assert reds > 2000 and greens > 2000


def test_panels_find_images_by_id(shown):
    root, images = shown
    rows = figures.load_panels(["ResNet50-Rise"], [1, 0], data_url=root, images=images)
    assert [row[0].image_id for row in rows] == ["tall", "wide"]
    assert rows[0][0].image.shape == (224, 224, 3)
    assert tuple(rows[1][0].image[112, 112]) == (200, 30, 30)


def test_maps_alone_without_images(shown, tmp_path, capsys):
    root, _ = shown
    out = tmp_path / "alone.png"
    assert main(["show", "ResNet50-Saliency", "--index", "1", "--data-url", root,
                 "--out", str(out)]) == 0
    assert "maps alone" in capsys.readouterr().out and out.stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["ResNet50-Salency", "--index", "0"], "did you mean 'ResNet50-Saliency'"),
    (["ResNet50-Saliency", "--index", "5"], "index 5 is outside"),
    (["ResNet50-Saliency", "--index", "-1"], "index -1 is outside"),
    (["ResNet50-GradCAM", "--index", "0"], "no explanations at"),
])
def test_bad_input_exits_2_and_writes_nothing(shown, tmp_path, capsys, argv, message):
    root, _ = shown
    out = tmp_path / "never.png"
    assert main(["show", *argv, "--data-url", root, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_image_missing_from_source(shown, tmp_path, capsys):
    root, _ = shown
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (32, 32)).save(other / "unrelated.png")
    assert main(["show", "ResNet50-Rise", "--index", "0", "--data-url", root,
                 "--images", str(other), "--out", str(tmp_path / "x.png")]) == 2
    assert "image 'wide' of ResNet50-Rise record 0" in capsys.readouterr().err


def test_every_missing_image_is_reported(shown, tmp_path, capsys):
    root, _ = shown
    partial = tmp_path / "partial"
    partial.mkdir()
    Image.new("RGB", (32, 32)).save(partial / "wide.png")  # 'tall' is missing
    assert main(["show", "ResNet50-Rise", "ResNet50-Saliency", "--index", "0", "1",
                 "--data-url", root, "--images", str(partial), "--out",
                 str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "2 image(s) of the records are not in" in err
    assert "image 'tall' of ResNet50-Rise record 1" in err
    assert "image 'tall' of ResNet50-Saliency record 1" in err
    assert "'wide'" not in err and not (tmp_path / "x.png").exists()


@pytest.fixture
def keyless(tmp_path):
    """Maps without image keys (like the published files), a folder of a red and a green
    photo, and the kecam json that lists them in the records' order: green first."""
    import json

    root, images = str(tmp_path / "bucket"), tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 64), (220, 20, 20)).save(images / "a_red.png")
    Image.new("RGB", (64, 64), (20, 220, 20)).save(images / "b_green.png")
    maps = np.random.default_rng(0).random((2, 224, 224, 1)).astype(np.float32)
    dd.write_explanations(dd.Layout(root).explanations("ResNet50", "Rise"), maps)
    kecam = tmp_path / "imagenet_data.json"
    kecam.write_text(json.dumps({"info": {"base_path": str(images)}, "test": [
        {"image": "b_green.png", "label": 1}, {"image": "a_red.png", "label": 0}]}))
    return root, str(images), str(kecam)


def test_keyless_maps_are_not_paired_with_a_folder_by_position(keyless, tmp_path, capsys):
    root, images, _ = keyless
    out = tmp_path / "x.png"
    assert main(["show", "ResNet50-Rise", "--index", "0", "--data-url", root, "--images",
                 images, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "carry no image keys" in err and "--assume-order" in err
    assert "imagenet_data.json" in err and not out.exists()
    with pytest.raises(dd.AlignmentError, match="assume_order=True"):
        figures.load_panels(["ResNet50-Rise"], [0], data_url=root, images=images)


def test_keyless_maps_pair_through_the_kecam_json_or_when_told(keyless, capsys, tmp_path):
    root, images, kecam = keyless
    by_json = figures.load_panels(["ResNet50-Rise"], [0, 1], data_url=root, images=kecam)
    assert [tuple(row[0].image[5, 5]) for row in by_json] == [(20, 220, 20), (220, 20, 20)]
    told = figures.load_panels(["ResNet50-Rise"], [0, 1], data_url=root, images=images,
                               assume_order=True)
    assert [tuple(row[0].image[5, 5]) for row in told] == [(220, 20, 20), (20, 220, 20)]
    assert main(["show", "ResNet50-Rise", "--index", "1", "--data-url", root, "--images",
                 images, "--assume-order", "--out", str(tmp_path / "ok.png")]) == 0


def test_empty_maps_say_so_without_a_colour_bar(tmp_path):
    root = str(tmp_path / "bucket")
    layout = dd.Layout(root)
    good = np.random.default_rng(1).random((1, 224, 224, 1)).astype(np.float32)
    dd.write_explanations(layout.explanations("ResNet50", "GradCAM"),
                          np.zeros((1, 224, 224, 1), np.float32))
    dd.write_explanations(layout.explanations("ResNet50", "GradCAMPP"),
                          np.full((1, 224, 224, 1), 0.25, np.float32))
    dd.write_explanations(layout.explanations("ResNet50", "Rise"), good)
    rows = figures.load_panels(["ResNet50-GradCAM", "ResNet50-GradCAMPP", "ResNet50-Rise"],
                               [0], data_url=root)
    fig = figures.figure(rows)
    panels = fig.axes[:3]
    texts = [[t.get_text() for t in ax.texts] for ax in panels]
    assert texts == [["empty map (all 0)"], ["empty map (constant 0.25)"], []]
    assert len(fig.axes) == 4  # three panels and one colour bar, the Rise map's
    assert not panels[0].images and panels[2].images


def test_out_suffix_chooses_the_format(shown, tmp_path, capsys):
    root, images = shown
    out = tmp_path / "grid.jpg"
    assert main(["show", "ResNet50-Rise", "--index", "0", "--data-url", root, "--images",
                 images, "--out", str(out)]) == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    with Image.open(out) as picture:
        assert picture.format == "JPEG"
    bad = tmp_path / "grid.gif"
    assert main(["show", "ResNet50-Rise", "--index", "0", "--data-url", root, "--out",
                 str(bad)]) == 2
    assert ".png, .jpg, .jpeg, .pdf, .svg" in capsys.readouterr().err and not bad.exists()


def test_a_refilled_figure_draws_the_pixels_of_a_fresh_one():
    import io

    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    maps = [rng.random((64, 64, 3)), rng.standard_normal((64, 64, 1)), np.zeros((64, 64, 1)),
            rng.random((64, 64, 1)) * 1e-6, np.full((64, 64, 3), 0.25),
            -rng.random((64, 64, 1)), rng.random((64, 64, 3))]

    def pixels(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))

    figures._KEPT.clear()
    for k, values in enumerate(maps * 2):  # the second round refills the kept figures
        image = photo if k % 3 else None
        model = "ResNet50" if k % 2 else "DinoV2"
        rows = [[figures.Panel(f"{model}-E{k}", k, values.astype(np.float32),
                               f"img_{k}" if k % 4 else "", image)]]
        assert np.array_equal(pixels(figures.render(rows, reuse=True)),
                              pixels(figures.render(rows))), k
    assert figures._KEPT  # figures were kept and refilled


def _drawn(rows):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures.figure(rows)
    FigureCanvasAgg(fig).draw()
    return fig, fig.canvas.get_renderer()


def _grid(scale: float, signed: bool, n_rows: int = 2, n_cols: int = 3, model: str = "Planted"):
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rows = []
    for r in range(n_rows):
        row = []
        for c in range(n_cols):
            values = rng.random((32, 32, 1)) * scale - (scale / 2 if signed else 0)
            row.append(figures.Panel(f"{model}-E{c}", r, values.astype(np.float32),
                                     f"img_{r}", photo))
        rows.append(row)
    return rows


@pytest.mark.parametrize(("scale", "signed"), [(1e-16, True), (1e-16, False), (3e-4, True),
                                               (0.02, True), (1.0, False), (5e4, True),
                                               (1e7, False)])
def test_colour_bar_labels_stay_beside_their_bar_and_say_their_value(scale, signed):
    """Tick labels (and any scale label) overlap no other panel, no bar, the figure's edge;
    each says its tick's value, and no two say the same."""
    fig, renderer = _drawn(_grid(scale, signed))
    maps = [ax for ax in fig.axes if ax.get_position().width > 0.1]
    bars = [ax for ax in fig.axes if ax.get_position().width < 0.1]
    assert len(maps) == len(bars) == 6
    frame = fig.bbox
    for bar in bars:
        others = [ax.get_window_extent(renderer) for ax in fig.axes if ax is not bar]
        texts = [t for t in bar.yaxis.get_ticklabels() if t.get_visible() and t.get_text()]
        texts.append(bar.yaxis.get_offset_text())
        for text in texts:
            if not text.get_text():
                continue
            box = text.get_window_extent(renderer)
            assert box.x0 >= frame.x0 and box.x1 <= frame.x1 + 0.5, text.get_text()
            for other in others:
                assert not box.overlaps(other), (text.get_text(), other)
        labels = [t.get_text() for t in bar.yaxis.get_ticklabels()]
        ticks = np.asarray(bar.yaxis.get_ticklocs())
        assert len(set(labels)) == len(labels) >= 3, labels
        np.testing.assert_allclose([float(t.replace("\N{MINUS SIGN}", "-")) for t in labels],
                                   ticks, rtol=0, atol=1e-6 * np.abs(ticks).max())


def test_a_lone_panel_has_distinct_ticks_and_one_title():
    rows = _grid(3e-4, False, 1, 1)
    fig, _ = _drawn(rows)
    labels = [t.get_text() for t in fig.axes[-1].yaxis.get_ticklabels()]
    assert len(set(labels)) == len(labels) >= 3, labels
    assert fig.axes[0].get_title() == "Planted-E0"  # the config, said once
    assert fig._suptitle is None or not fig._suptitle.get_text()
    grid, _ = _drawn(_grid(1.0, False, 2, 2))  # a grid of one model names it once, on top
    assert grid._suptitle.get_text() == "Planted: attribution maps"
    assert [ax.get_title() for ax in grid.axes[:2]] == ["E0", "E1"]


def test_numerically_zero_maps_say_so():
    tiny, fine = _grid(2e-16, False, 1, 1), _grid(1.0, False, 1, 1)
    fig, _ = _drawn([tiny[0] + fine[0]])
    notes = [[t.get_text() for t in ax.texts] for ax in fig.axes if ax.get_position().width > 0.1]
    assert notes == [["max |a| = 2e\N{MINUS SIGN}16: numerically zero"], []]
    assert scales.near_zero(np.full((224, 224, 3), 1e-12)) is not None  # total 5e-8
    assert scales.near_zero(np.full((224, 224, 1), 1e-9)) is None  # total 5e-5


def test_out_is_checked_before_anything_is_read(shown, tmp_path, capsys):
    # `dina show --out mine.pdf` replaced a user's file; a folder at --out failed after the
    # work with the temporary's name
    root, _ = shown
    argv = ["show", "ResNet50-Rise", "--index", "0", "--data-url", root, "--out"]
    mine = tmp_path / "mine.pdf"
    mine.write_bytes(b"my own notes")
    assert main([*argv, str(mine)]) == 2
    assert "exists and is not an output of this command" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own notes"
    folder = tmp_path / "grid.png"
    folder.mkdir()
    missing = str(tmp_path / "no-bucket")  # not even looked at: the output fails first
    assert main(["show", "ResNet50-Rise", "--index", "0", "--data-url", missing, "--out",
                 str(folder)]) == 2
    assert f"cannot write {folder}: it is a folder" in capsys.readouterr().err
    for name in ("grid.svg", "grid.jpg", "mine.pdf"):  # an earlier picture is replaced
        out = tmp_path / name
        assert main([*argv, str(out)] + (["--overwrite"] if name == "mine.pdf" else [])) == 0
        assert main([*argv, str(out)]) == 0
    assert mine.read_bytes()[:5] == b"%PDF-"
