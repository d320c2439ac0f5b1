"""Pictures of attribution maps: a map over its image with a colour bar, or a grid of them
(rows: images, columns: configs) like the figures of attribution papers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.errors import AlignmentError, ConfigError, LayoutError
from dina_datasets.layout import Layout
from dina_datasets.recordio.records import read_records_at
from dina_datasets.viz import scales

CENTRAL_CROP = 0.95  # kecam's evaluation crop, so that the picture lines up with the map
# --out suffix -> matplotlib format
DPI = 110
FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
# How a picture of each format starts (matplotlib's SVG opens with its XML declaration): an
# existing file at --out is replaced only when it starts so (an earlier picture).
SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "pdf": b"%PDF-",
              "svg": b"<?xml"}


@dataclass(frozen=True)
class Panel:
    """One map of one config, with the image it explains when known."""

    config: str
    index: int
    explanation: np.ndarray
    image_id: str = ""
    image: np.ndarray | None = None


def display_image(path: str, size: int) -> np.ndarray:
    """The image as the model saw it: central crop of 0.95 of the shorter side, resized to
    `size` x `size` (bicubic); uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise LayoutError(f"cannot read image {path!r}: {err}") from None
    width, height = rgb.size
    side = CENTRAL_CROP * min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    crop = rgb.crop((round(left), round(top), round(left + side), round(top + side)))
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


def load_panels(configs: Sequence[str], indices: Sequence[int], *, data_url: str,
                images: str | None = None, assume_order: bool = False,
                storage_options: dict[str, Any] | None = None) -> list[list[Panel]]:
    """Panels[row][column] for `indices` (rows) of `configs` (columns, catalog names).

    The image of a record is found in `images` (a folder or a kecam json) by the record's
    own `image_id`; every id missing from `images` is reported. Records without one (the
    published files) are paired by position only with the kecam json that produced them,
    or with `assume_order=True` (see `check_positional`).
    """
    cells = [catalog.Cell.from_name(name, allow_missing=True) for name in configs]
    return read_panels([(c.model, c.explainer) for c in cells], indices, data_url=data_url,
                       images=images, assume_order=assume_order,
                       storage_options=storage_options)


def read_panels(cells: Sequence[tuple[str, str]], indices: Sequence[int], *, data_url: str,
                images: str | None = None, assume_order: bool = False,
                storage_options: dict[str, Any] | None = None) -> list[list[Panel]]:
    """`load_panels` of (model, explainer) pairs taken as they are, without the catalog:
    the cells found in the data (a contributed model's, registered in this process or not)."""
    layout = Layout(data_url)
    entries = _image_entries(images)
    by_id = {e.image_id: e.path for e in entries or ()}
    missing: list[str] = []
    columns = []
    names = [f"{model}-{explainer}" for model, explainer in cells]
    for (model, explainer), name in zip(cells, names, strict=True):
        # each config's records in one batch of ranged reads
        url = layout.explanations(model, explainer)
        if not storage.exists(url, storage_options):
            raise LayoutError(f"{name}: no explanations at {url}; check --data-url "
                              "(a bucket-shaped folder: Model/Explainer/explanations."
                              "tfrecord)")
        columns.append(read_records_at(url, indices, storage_options=storage_options,
                                       tensors=frozenset({"explanations"})))
    rows = []
    for k, index in enumerate(indices):
        row = []
        for name, records in zip(names, columns, strict=True):
            record = records[k]
            image_id = record.get("image_id", b"")
            image_id = image_id.decode() if isinstance(image_id, bytes) else str(image_id)
            explanation = record["explanations"]
            image = None
            if entries is not None and image_id:
                if image_id in by_id:
                    image = display_image(by_id[image_id], explanation.shape[0])
                else:
                    missing.append(f"image {image_id!r} of {name} record {index}")
            elif entries is not None:
                from dina_datasets.images import check_positional

                check_positional(images, f"the records of {name}", assume_order)
                if index >= len(entries):
                    raise AlignmentError(f"record {index} of {name} has no image_id and "
                                         f"{images!r} lists only {len(entries)} images")
                image = display_image(entries[index].path, explanation.shape[0])
            row.append(Panel(name, index, explanation, image_id, image))
        rows.append(row)
    if missing:
        raise LayoutError(f"{len(missing)} image(s) of the records are not in {images!r}: "
                          f"{'; '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. "
                          "Give the images source the maps were made from")
    return rows


def _image_entries(images: str | None) -> list[Any] | None:
    if images is None:
        return None
    from dina_datasets.images import list_images

    return list_images(images)


def image_format(out: str) -> str:
    """The matplotlib format of an output path, from its suffix; ConfigError otherwise."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot write a picture to {out!r}: give a file name ending in "
                          f"{', '.join(FORMATS)}")
    return FORMATS[suffix]


# the grid's geometry, in inches: a square map, its colour bar and the bar's labels per
# column; a band for the image names on the left, for the titles (and the suptitle) on top.
# Fixed, not constrained_layout: the same picture at a fifth of the drawing time. The bar's
# labels (at most 5 ticks, `scales.tick_labels`: no offset text above the bar) fit in
# BAR_LABELS at `scales.TICK_SIZE` points, the widest ("−2.5e−16") included.
MAP, BAR_PAD, BAR, BAR_LABELS = 2.45, 0.06, 0.11, 0.64
LEFT, TOP, SUPTITLE, ROW_GAP, BOTTOM = 0.3, 0.28, 0.34, 0.12, 0.1
COLUMN = MAP + BAR_PAD + BAR + BAR_LABELS


_KEPT: dict[tuple[Any, ...], tuple[Any, list[Any]]] = {}  # figures kept for `reuse`


def figure(rows: list[list[Panel]], *, alpha: float = 0.8, reuse: bool = False) -> Any:
    """The matplotlib figure of panels (rows x columns), a colour bar beside each map that
    ranks its pixels; a degenerate map says "empty map" instead of getting a scale.
    `reuse`: refill a figure kept from an earlier call of the same structure (same pixels;
    for a process that draws many pictures, e.g. the explorer's renderers)."""
    if not rows or not rows[0]:
        raise ConfigError("nothing to draw: give at least one config and one index")
    looks = [[scales.look(p.explanation, p.image is not None, alpha) for p in row] for row in rows]
    models = {p.config.split("-", 1)[0] for row in rows for p in row}
    shape = tuple((None if p.image is None else p.image.shape, look.empty is None,
                   None if look.values is None else look.values.shape,
                   look.norm is not None and look.norm.vmin is None, look.note is None)
                  for row, row_looks in zip(rows, looks, strict=True)
                  for p, look in zip(row, row_looks, strict=True))
    key = (len(models) == 1, len(rows), len(rows[0]), shape)
    autoscaled = any(part[3] for part in shape)  # a scale from the data: drawn afresh
    if reuse and not autoscaled and key in _KEPT:
        fig, parts = _KEPT[key]
        _fill(fig, parts, rows, looks, models)
        return fig
    fig, parts = _build(rows, looks, models)
    if reuse and not autoscaled:
        if len(_KEPT) >= 8:
            _KEPT.clear()
        _KEPT[key] = (fig, parts)
    return fig


def _titles(rows: list[list[Panel]], models: set[str]) -> tuple[list[str], list[str], str]:
    """(column titles, row labels, the figure's title): one model's grid says the model
    once, on top; a lone panel (the explorer draws each map alone) is titled by its config,
    with no figure title to repeat on every tile."""
    shared = len(models) == 1 and len(rows) * len(rows[0]) > 1
    titles = [p.config.split("-", 1)[1] if shared else p.config for p in rows[0]]
    labels = [row[0].image_id or f"record {row[0].index}" for row in rows]
    return titles, labels, f"{next(iter(models))}: attribution maps" if shared else ""


def _build(rows: list[list[Panel]], looks: list[list[scales.Look]], models: set[str]
           ) -> tuple[Any, list[Any]]:
    import matplotlib
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), len(rows[0])
    titles, labels, suptitle = _titles(rows, models)
    top = TOP + (SUPTITLE if suptitle else 0.0)
    width = LEFT + n_cols * COLUMN
    height = top + n_rows * (MAP + ROW_GAP) - ROW_GAP + BOTTOM
    fig = Figure(figsize=(width, height))

    def box(r: int, c: int, x: float, w: float) -> list[float]:
        y = height - top - r * (MAP + ROW_GAP) - MAP
        return [(LEFT + c * COLUMN + x) / width, y / height, w / width, MAP / height]

    axes = [[fig.add_axes(box(r, c, 0.0, MAP)) for c in range(n_cols)] for r in range(n_rows)]
    parts = []  # per panel: (photo, note or overlay, colour bar)
    for r, (row, row_looks) in enumerate(zip(rows, looks, strict=True)):
        for c, (panel, look) in enumerate(zip(row, row_looks, strict=True)):
            ax = axes[r][c]
            photo = ax.imshow(panel.image) if panel.image is not None else None
            bar = None
            if look.empty:
                if panel.image is None:
                    ax.set_facecolor("0.85")
                shown = ax.text(0.5, 0.5, look.empty, transform=ax.transAxes, ha="center",
                                va="center", fontsize=9, bbox={"boxstyle": "round",
                                                               "facecolor": "white",
                                                               "alpha": 0.85})
            else:
                shown = ax.imshow(look.values, cmap=look.cmap, norm=look.norm,
                                  alpha=look.weight)
                bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=look.norm,
                                                                cmap=look.cmap),
                                   cax=fig.add_axes(box(r, c, MAP + BAR_PAD, BAR)))
                scales.bar_ticks(bar)
            note = None
            if look.note:
                note = ax.text(0.5, 0.03, look.note, transform=ax.transAxes, ha="center",
                               va="bottom", fontsize=8, bbox={"boxstyle": "round",
                                                              "facecolor": "white",
                                                              "alpha": 0.85})
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=9)
            parts.append((ax, photo, shown, bar, note))
    if suptitle:
        fig.suptitle(suptitle, fontsize=12, y=1 - 0.08 / fig.get_figheight(), va="top")
    return fig, parts


def _fill(fig: Any, parts: list[Any], rows: list[list[Panel]], looks: list[list[scales.Look]],
          models: set[str]) -> None:
    import matplotlib

    titles, labels, suptitle = _titles(rows, models)
    panels = [(r, c, p, look) for r, (row, row_looks) in enumerate(zip(rows, looks,
                                                                        strict=True))
              for c, (p, look) in enumerate(zip(row, row_looks, strict=True))]
    for (r, c, panel, look), (ax, photo, shown, bar, note) in zip(panels, parts, strict=True):
        if photo is not None:
            photo.set_data(panel.image)
        if look.empty:
            shown.set_text(look.empty)
        else:
            shown.set_data(look.values)
            shown.set_cmap(look.cmap)
            shown.set_norm(look.norm)
            shown.set_alpha(look.weight)
            bar.update_normal(matplotlib.cm.ScalarMappable(norm=look.norm, cmap=look.cmap))
            scales.bar_ticks(bar)  # (a new norm resets the bar's locator and formatter)
        if note is not None:
            note.set_text(look.note)
        if r == 0:
            ax.set_title(titles[c], fontsize=10)
        if c == 0:
            ax.set_ylabel(labels[r], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12, y=1 - 0.08 / fig.get_figheight(), va="top")


def draw(rows: list[list[Panel]], out: str, *, alpha: float = 0.8) -> str:
    """Draw panels (rows x columns) into a picture whose format follows the suffix of `out`
    (.png, .jpg/.jpeg, .pdf, .svg); returns its path."""
    kind = image_format(out)
    fig = figure(rows, alpha=alpha)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    with storage.atomic_write(os.path.abspath(out), "wb") as handle:
        fig.savefig(handle, format=kind, dpi=DPI)
    return out


def render(rows: list[list[Panel]], *, alpha: float = 0.8, reuse: bool = False) -> bytes:
    """The PNG bytes of panels (rows x columns): the pixels `draw` writes to a .png
    (`dina show`), opaque RGB, lightly compressed (the explorer shows these bytes).
    `reuse`: see `figure`."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure(rows, alpha=alpha, reuse=reuse))
    canvas.figure.dpi = DPI
    canvas.draw()
    rgb = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="png", compress_level=1)  # 3x faster than 6
    return buffer.getvalue()
