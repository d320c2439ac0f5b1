"""The app's controls: their filters of the scores table (predictions all / correct /
wrong, classes, image ids, activation), the record index a user typed, and the order of the
choices offered (catalog order first)."""

from __future__ import annotations

from typing import Any

from dina_datasets.errors import ConfigError, RecordIndexError
from dina_datasets.layout import DEFAULT_ACTIVATION

PREDICTIONS = ("all", "correct", "wrong")


def filters(prediction: str = "all", classes: str = "", image_ids: str = "",
            activation: str = DEFAULT_ACTIVATION) -> list[str]:
    """The scores table's filters (`dina_datasets.analysis.table`) of the app's controls."""
    out = []
    if prediction and prediction != "all":
        if prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                              f"got {prediction!r}")
        out.append(prediction)
    if classes and classes.strip():
        out.append(f"class={classes.strip()}")
    if image_ids and image_ids.strip():
        out.append(f"image_id={image_ids.strip()}")
    out.append(f"activation={activation or DEFAULT_ACTIVATION}")
    return out


def record_index(value: Any) -> int:
    """A typed record index as an int; RecordIndexError unless a whole number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordIndexError(f"index must be a whole number, got {value!r}") from None
    if not number.is_integer() or number < 0:
        raise RecordIndexError(f"index must be a whole number >= 0, got {value!r}")
    return int(number)


def position(name: str, names: list[str]) -> tuple[int, str]:
    """A sort key: the order of `names` (the catalog's) first, then others alphabetically."""
    return (names.index(name), "") if name in names else (len(names), name)
