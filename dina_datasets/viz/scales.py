"""How a map is put on a colour scale: the 2-D values drawn (`heatmap`), their norm and
colour map, the colour bar's ticks (short labels that say their value and fit beside the
bar, `tick_labels`) and the notes of maps that rank nothing (degenerate) or are numerically
zero (`near_zero`: total |attribution| under `maps.NEAR_ZERO`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import maps

TICK_SIZE = 7  # points: the bar's labels fit in `figures.BAR_LABELS` at this size


def heatmap(explanation: np.ndarray) -> tuple[np.ndarray, bool]:
    """A 2-D map to draw and whether it is signed: 3-channel maps become the mean of |E|
    over channels; 1-channel maps keep their sign."""
    array = np.asarray(explanation, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] > 1:
        return np.abs(array).mean(axis=-1), False
    flat = array.reshape(array.shape[:2]) if array.ndim == 3 else array
    signed = bool(np.nanmin(flat) < 0 < np.nanmax(flat))
    return flat, signed


@dataclass
class Look:
    """How one panel is drawn: a degenerate map's note, or its values on a scale."""

    empty: str | None
    note: str | None = None  # e.g. "max |a| = 1e-16: numerically zero"
    values: np.ndarray | None = None
    norm: Any = None
    cmap: str = ""
    weight: np.ndarray | None = None


def look(explanation: np.ndarray, over_image: bool, alpha: float) -> Look:
    """How a map is drawn: its values, colour scale and opacity (`alpha` at its strongest
    pixels when `over_image`), a note when it is numerically zero; or, for a degenerate map,
    only the note that says so."""
    import matplotlib

    empty = maps.describe(explanation)
    if empty:
        return Look(empty)
    values, signed = heatmap(explanation)
    bound = float(np.nanpercentile(np.abs(values), 99.5)) or float(np.nanmax(np.abs(values)))
    low = -bound if signed else (0.0 if np.nanmin(values) >= 0 else None)
    weight = None
    if over_image:
        weight = alpha * np.sqrt(np.clip(np.abs(np.nan_to_num(values)) / bound, 0, 1))
    return Look(None, near_zero(explanation), values,
                 matplotlib.colors.Normalize(vmin=low, vmax=bound),
                 "RdBu_r" if signed else "inferno", weight)


def near_zero(explanation: np.ndarray) -> str | None:
    """"max |a| = 1e-16: numerically zero" for a map whose total |attribution| is under
    `maps.NEAR_ZERO` (its pattern is drawn, but its scores are the metrics' epsilons');
    None otherwise."""
    if maps.total_attribution(explanation) >= maps.NEAR_ZERO:
        return None
    peak = float(np.nanmax(np.abs(np.asarray(explanation, np.float64))))
    return f"max |a| = {_short(peak, 1)}: numerically zero"


def _short(value: float, digits: int) -> str:
    """`value` with `digits` significant digits, its exponent written short (2e−16, 1e6)."""
    if value == 0:
        return "0"
    mantissa, _, exponent = f"{value:.{digits}g}".partition("e")
    text = f"{mantissa}e{int(exponent)}" if exponent else mantissa
    return text.replace("-", "\N{MINUS SIGN}")


def tick_labels(values: Sequence[float]) -> list[str]:
    """Short labels of colour-bar ticks: each with the fewest significant digits (up to 6)
    that give back its value (to a millionth of the largest), the exponent in each label (no
    offset text drawn above the bar)."""
    numbers = [float(v) for v in values]
    tolerance = 1e-6 * max((abs(v) for v in numbers), default=0.0)
    labels = []
    for value in numbers:
        for digits in range(1, 7):
            label = _short(value, digits)
            if abs(float(label.replace("\N{MINUS SIGN}", "-")) - value) <= tolerance:
                break
        labels.append(label)
    return labels


@functools.cache
def _tick_formatter() -> type:
    import matplotlib.ticker

    class ShortTicks(matplotlib.ticker.Formatter):
        """Colour-bar tick labels by `tick_labels`."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            return _short(float(x), 3)

        def format_ticks(self, values: Sequence[float]) -> list[str]:
            return tick_labels(values)

    return ShortTicks


def bar_ticks(bar: Any) -> None:
    """At most 5 ticks, labelled short and small enough to stay beside their bar."""
    import matplotlib.ticker

    bar.locator = matplotlib.ticker.MaxNLocator(nbins=4)
    bar.formatter = _tick_formatter()()
    bar.ax.tick_params(labelsize=TICK_SIZE)
