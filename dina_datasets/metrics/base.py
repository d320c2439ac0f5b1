"""Per-sample metric scores on arrays, or on a stream of batches with memory bounded by a batch.

A metric is built with its model and parameters, then called on arrays
(`metric(inputs, targets, explanations)`) or fed any iterable of batches
(`metric.evaluate(batches)`); both give one float per sample, in order.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from dina_datasets import catalog
from dina_datasets.errors import AlignmentError, ConfigError, check_positive_int
from dina_datasets.layout import DEFAULT_ACTIVATION, check_activation

Batch = tuple[np.ndarray | None, np.ndarray | None, np.ndarray]

INPUT_KEYS = ("inputs", "preprocess_input")
TARGET_KEYS = ("targets", "one_hot_prediction")
EXPLANATION_KEYS = ("explanations", "explanation")
VARIANTS = ("dina", "xplique")


def reduce_channels(maps: np.ndarray) -> np.ndarray:
    """(N, H, W) float32 maps: the channel mean of (N, H, W, C) maps, as DINA does first."""
    maps = np.asarray(maps)
    if maps.ndim == 4:
        return maps.mean(axis=-1, dtype=np.float32)
    if maps.ndim != 3:
        raise AlignmentError(f"explanations must have shape (N, H, W) or (N, H, W, C), got "
                             f"{maps.shape}")
    return maps.astype(np.float32, copy=False)


def swap_activation(model: Any, activation: str, metric: str = "") -> Any:
    """A Keras model with its softmax head replaced by `activation` (sigmoid, logits).

    Only Keras models can be changed; a plain callable must return the scores wanted."""
    if isinstance(model, Forward):
        model = model.model
    if not (hasattr(model, "layers") and callable(model)):
        raise ConfigError(f"{metric or 'the metric'}: activation={activation!r} swaps the "
                          "softmax head of a Keras model; for a callable model, pass "
                          f"activation='{DEFAULT_ACTIVATION}' and make the callable return the "
                          f"{activation} scores itself")
    from dina_datasets.generation.models import with_activation

    return with_activation(model, activation)


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)} "
                          "('dina' = the published definition, 'xplique' = xplique >= 1.5)")
    return variant


_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traced(model: Any, shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """`model(x, training=False)` as one `tf.function` per Keras model and input shape
    (H, W, C), traced once for any batch size (its input signature leaves N free) and shared
    by every `Forward` and metric of that model: no retracing, hence no retracing warnings."""
    functions = _TRACED.setdefault(model, {})
    key = tuple(int(d) for d in shape)
    if key not in functions:
        from dina_datasets.generation.runtime import tensorflow

        tf = tensorflow()
        ref = weakref.ref(model)  # the function must not keep its model (the cache's key)
        functions[key] = tf.function(lambda x: ref()(x, training=False), input_signature=[
            tf.TensorSpec([None, *key], tf.float32)])
    return functions[key]


class Forward:
    """A model as a function of a float32 batch (N, H, W, C) to numpy scores (N, classes).

    Keras models run through one `tf.function` per model and input shape (`traced`), traced
    once whatever the batch size. Any other callable is called as it is.
    """

    def __init__(self, model: Any) -> None:
        if isinstance(model, Forward):
            model = model.model
        if not callable(model):
            raise ConfigError(f"model must be a Keras model or a callable mapping a float32 "
                              f"batch (N, H, W, 3) to scores (N, classes), got "
                              f"{type(model).__name__}")
        self.model = model
        self.keras = callable(getattr(model, "predict_on_batch", None)) and \
            hasattr(model, "layers")
        self._buffers: list[np.ndarray] = []

    def buffers(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Two float32 work buffers of `shape`, kept for the next batch (no page faults)."""
        if not self._buffers or self._buffers[0].shape != shape:
            self._buffers = [np.zeros(shape, np.float32) for _ in range(2)]
        return self._buffers

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.keras:
            batch = np.asarray(batch, np.float32)
            out = traced(self.model, batch.shape[1:])(batch)
            out = out.numpy() if hasattr(out, "numpy") else out
        else:
            out = self.model(batch)
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or len(out) != len(batch):
            raise AlignmentError(f"the model must return scores of shape (N, classes) for a "
                                 f"batch of N={len(batch)} inputs, got {out.shape}")
        return out

    def scores(self, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """sum(model(x) * targets, -1): the score of each input for its (one-hot) target."""
        return target_scores(self(batch), targets)


def target_scores(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """sum(outputs * targets, -1), checking that both have the same classes."""
    if outputs.shape[-1] != targets.shape[-1]:
        raise AlignmentError(f"the model returns {outputs.shape[-1]} classes but targets have "
                             f"{targets.shape[-1]}")
    return np.einsum("kc,kc->k", outputs, np.asarray(targets, np.float32))


def as_batch(item: Any) -> Batch:
    """(inputs, targets, explanations) of one stream item.

    An item is a 3-tuple, a mapping with `inputs`/`preprocess_input`,
    `targets`/`one_hot_prediction` and `explanations` keys, or an array of explanations
    alone (enough for the metrics that need no model).
    """
    if isinstance(item, Mapping):
        found = [next((item[k] for k in keys if k in item), None)
                 for keys in (INPUT_KEYS, TARGET_KEYS, EXPLANATION_KEYS)]
        if found[2] is None:
            raise AlignmentError(f"a batch mapping needs an 'explanations' key; keys present: "
                                 f"{sorted(item)}")
        inputs, targets, maps = found
    elif isinstance(item, (tuple, list)):
        if len(item) != 3:
            raise AlignmentError(f"a batch tuple must be (inputs, targets, explanations), got "
                                 f"{len(item)} items")
        inputs, targets, maps = item
    else:
        inputs, targets, maps = None, None, item
    maps = np.asarray(maps)
    n = len(maps)
    arrays = []
    for name, value in (("inputs", inputs), ("targets", targets)):
        if value is not None:
            value = np.asarray(value)
            if len(value) != n:
                raise AlignmentError(f"a batch holds {n} explanations but {len(value)} {name}")
        arrays.append(value)
    return arrays[0], arrays[1], maps


def _slice(batch: Batch, start: int, stop: int) -> Batch:
    return tuple(None if a is None else a[start:stop] for a in batch)  # type: ignore[return-value]


def _concat(pieces: list[Batch]) -> Batch:
    if len(pieces) == 1:
        return pieces[0]
    return tuple(None if pieces[0][k] is None else np.concatenate([p[k] for p in pieces])
                 for k in range(3))  # type: ignore[return-value]


def rebatch(batches: Iterable[Any], size: int) -> Iterator[Batch]:
    """The samples of a stream regrouped into batches of exactly `size` (the last may be less).

    Holds at most one incoming batch and one outgoing batch in memory.
    """
    pending: list[Batch] = []
    count = 0
    for item in batches:
        batch = as_batch(item)
        n, pos = len(batch[2]), 0
        while pos < n:
            take = min(size - count, n - pos)
            pending.append(_slice(batch, pos, pos + take))
            count, pos = count + take, pos + take
            if count == size:
                yield _concat(pending)
                pending, count = [], 0
    if pending:
        yield _concat(pending)


def slices(inputs: Any, targets: Any, explanations: Any, size: int) -> Iterator[Batch]:
    """Batches of `size` samples from whole arrays (views, no copy)."""
    maps = np.asarray(explanations)
    for start in range(0, len(maps), size):
        yield as_batch((None if inputs is None else inputs[start:start + size],
                        None if targets is None else targets[start:start + size],
                        maps[start:start + size]))


class Metric(ABC):
    """A DINA metric: per-sample scores of explanations, on arrays or on a stream.

    Subclasses name their catalog entry (`name`) and implement `scores`, which scores one
    batch; samples are numbered from `start` so that random metrics draw the same numbers
    for a sample however the data is batched.
    """

    name: ClassVar[str] = ""

    def __init__(self, model: Any = None, *, batch_size: int = 32,
                 activation: str = DEFAULT_ACTIVATION) -> None:
        check_positive_int("batch_size", batch_size)
        if model is None and self.spec.needs_model:
            raise ConfigError(f"{self.name} needs a model: pass a Keras model or a callable "
                              "mapping a float32 batch (N, H, W, 3) to scores (N, classes)")
        self.activation = check_activation(activation)
        if self.activation != DEFAULT_ACTIVATION and not self.spec.depends_on_activation:
            raise ConfigError(f"{self.name} does not depend on the output activation (it reads "
                              f"the maps alone): its {DEFAULT_ACTIVATION} scores stand for "
                              "every activation")
        if self.activation != DEFAULT_ACTIVATION:
            model = swap_activation(model, self.activation, self.name)
        self.model = model
        self.batch_size = int(batch_size)
        self.forward = Forward(model) if model is not None else None

    @property
    def spec(self) -> catalog.MetricSpec:
        """This metric's catalog entry (family, direction, subset, published parameters)."""
        return catalog.METRICS[self.name]

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    def __call__(self, inputs: Any = None, targets: Any = None, explanations: Any = None, *,
                 start: int = 0) -> np.ndarray:
        """Scores of whole arrays. Metrics without a model also accept `metric(maps)`."""
        if explanations is None and targets is None and inputs is not None and \
                not self.spec.needs_model:
            inputs, explanations = None, inputs
        if explanations is None:
            raise AlignmentError(f"{self.name} needs explanations")
        return self.evaluate(slices(inputs, targets, explanations, self.batch_size),
                             start=start)

    def evaluate(self, batches: Iterable[Any], *, start: int = 0) -> np.ndarray:
        """Scores of every sample of a stream of batches, concatenated."""
        parts = list(self.iter_scores(batches, start=start))
        return np.concatenate(parts) if parts else np.zeros(0, np.float64)

    def iter_scores(self, batches: Iterable[Any], *, start: int = 0) -> Iterator[np.ndarray]:
        """Scores batch after batch: memory is bounded by the batch size, not the stream."""
        index = start
        for inputs, targets, maps in rebatch(batches, self.batch_size):
            self._check(inputs, targets, maps)
            out = np.asarray(self.scores(inputs, targets, maps, start=index), np.float64)
            index += len(out)
            yield out

    def _check(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               maps: np.ndarray) -> None:
        if not self.spec.needs_model:
            return
        if inputs is None or targets is None:
            raise AlignmentError(f"{self.name} needs inputs and targets with the explanations")
        if inputs.ndim != 4 or targets.ndim != 2:
            raise AlignmentError(f"{self.name} expects inputs (N, H, W, C) and one-hot targets "
                                 f"(N, classes), got {inputs.shape} and {targets.shape}")
        if maps.shape[1:3] != inputs.shape[1:3]:
            raise AlignmentError(f"explanations of shape {maps.shape[1:]} do not cover inputs "
                                 f"of shape {inputs.shape[1:]}")

    @abstractmethod
    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        """Scores of one batch whose first sample is number `start` of the stream."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size})"
