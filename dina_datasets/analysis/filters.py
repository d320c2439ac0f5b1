"""The filters of the scores table (`--filter` on the command line, `filters=` in Python):
each text becomes a DuckDB expression whose values are bound as constants, never spliced
into SQL text. Combined with AND:

- `correct` / `wrong`: images the model classified right / wrong (labels and predictions
  known, i.e. not -1);
- `class=281,285` (or `label=`): true classes; `prediction=...`: predicted classes;
- `image_id=ILSVRC2012_val_00000001,...`; `index=0,1,2`;
- `activation=sigmoid`: the output activation (default: softmax only, the published one);
- `model=...`, `explainer=...`, `metric=...`;
- `settings=ID`: the settings id of the score files (`dina_datasets.runs.settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets.errors import ConfigError

FILTER_HELP = ("correct | wrong | class=C1,C2 | prediction=C | image_id=ID1,ID2 | index=I | "
               "activation=A | model=M | explainer=E | metric=X | settings=ID")
_INT_COLUMNS = {"class": "label", "label": "label", "prediction": "prediction",
                "index": "index"}
_TEXT_COLUMNS = ("image_id", "activation", "model", "explainer", "metric", "settings")


@dataclass(frozen=True)
class Filter:
    """One filter: the column it restricts (`key`) and its DuckDB expression (values bound
    as constants, never spliced into SQL text)."""

    key: str
    expression: Any

    def __str__(self) -> str:
        return str(self.expression)


def isin(column: str, values: Sequence[Any]) -> Any:
    """The expression `column IN (values)`, the values bound as constants (no value: no
    row)."""
    from duckdb import ColumnExpression, ConstantExpression

    if not len(values):
        return ConstantExpression(False)
    return ColumnExpression(column).isin(*[ConstantExpression(v) for v in values])


def literal(value: Any) -> str:
    """A SQL literal of a string or an integer. The statistics bind their values instead
    (`Filter`, `Scores.frame(sql, params)`); this stays for the explorer's queries until
    they bind theirs."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def condition(text: str) -> Filter:
    """The filter of one `--filter` text (see the module docstring)."""
    from duckdb import ColumnExpression, ConstantExpression

    key, sep, value = text.strip().partition("=")
    key = key.strip().lower()
    if not sep:
        label, prediction = ColumnExpression("label"), ColumnExpression("prediction")
        known = label >= ConstantExpression(0)
        if key == "correct":
            return Filter(key, known & (label == prediction))
        if key == "wrong":
            return Filter(key, known & (prediction >= ConstantExpression(0))
                          & (label != prediction))
        raise ConfigError(f"unknown filter {text!r}; valid: {FILTER_HELP}")
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"filter {text!r} names no value; valid: {FILTER_HELP}")
    if key in _INT_COLUMNS:
        try:
            numbers = [int(v) for v in items]
        except ValueError:
            raise ConfigError(f"filter {text!r}: {key} takes integers, e.g. {key}=281,285"
                              ) from None
        return Filter(_INT_COLUMNS[key], isin(_INT_COLUMNS[key], numbers))
    if key in _TEXT_COLUMNS:
        return Filter(key, isin(key, items))
    raise ConfigError(f"unknown filter {text!r}; valid: {FILTER_HELP}")
