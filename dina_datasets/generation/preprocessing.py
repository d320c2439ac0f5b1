"""kecam's evaluation preprocessing, as DINA used it (FACTS.md §3).

Decode (`tf.image.decode_image`, 3 channels, float 0..255), central crop of 0.95 of the
shorter side, bicubic resize with antialias to the model's input size, then the model's
`rescale_mode` (`(x - mean) / std`), exactly as `keras_cv_attention_models.imagenet.tf_data`
(kecam 1.4.3) does with `eval_central_crop=0.95, resize_method="bicubic",
resize_antialias=True`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

import dina_datasets.generation  # noqa: F401  (legacy Keras before TensorFlow)
from dina_datasets import catalog
from dina_datasets.errors import ConfigError, ImageReadError

CENTRAL_CROP = 0.95
RESIZE_METHOD = "bicubic"
ANTIALIAS = True


def rescale_constants(rescale_mode: str) -> tuple[Any, Any]:
    """kecam's (mean, std) for a rescale mode ("torch", "tf", "tf128", "raw01", "raw", ...)."""
    from keras_cv_attention_models.common_layers import init_mean_std_by_rescale_mode

    return init_mean_std_by_rescale_mode(rescale_mode)


@functools.lru_cache(maxsize=8)
def _crop_resize(size: int) -> Any:
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()
    from keras_cv_attention_models.imagenet.tf_data import evaluation_process_crop_resize

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    def crop_resize(image: Any) -> Any:
        return evaluation_process_crop_resize(image, (size, size), CENTRAL_CROP, RESIZE_METHOD,
                                              ANTIALIAS)

    return crop_resize


@functools.lru_cache(maxsize=8)
def _load_crop_resize(size: int) -> Any:
    """One graph from a file path to the cropped, resized float image (no eager steps)."""
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    crop_resize = _crop_resize(size)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def load(path: Any) -> Any:
        image = tf.image.decode_image(tf.io.read_file(path), channels=3,
                                      expand_animations=False)
        image = tf.cast(image, tf.float32)
        image.set_shape([None, None, 3])
        return crop_resize(image)

    return load


def read_image(path: str) -> np.ndarray:
    """An image file decoded as kecam does: float32 (H, W, 3) in 0..255."""
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    try:
        data = tf.io.read_file(path)
        image = tf.image.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", None) or str(err)
        message = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]|name:.*$", "",
                         message.strip().splitlines()[0]).strip()
        raise ImageReadError(f"cannot read image {path!r}: {message}") from None
    return tf.cast(image, tf.float32).numpy()


def _as_image(image: str | np.ndarray, position: int) -> np.ndarray:
    if isinstance(image, str):
        return read_image(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ConfigError(f"image {position} has shape {array.shape}; expected (H, W, 3) "
                          "pixels in 0..255 (or (H, W) grey)")
    return array[..., :3].astype(np.float32)


def preprocess_images(images: Sequence[str | np.ndarray], model_name: str, *,
                      input_size: int | None = None, rescale_mode: str | None = None
                      ) -> np.ndarray:
    """Images (files, or pixel arrays in 0..255) preprocessed for `model_name`: float32
    (N, S, S, 3) with S the model's input size, exactly kecam's evaluation pipeline.

    `input_size` / `rescale_mode` override the catalog's values.
    """
    spec = catalog.model(model_name)
    size = int(input_size or spec.input_size)
    mean, std = rescale_constants(rescale_mode or spec.rescale_mode)
    if isinstance(images, (str, np.ndarray)) and (isinstance(images, str) or images.ndim < 4):
        raise ConfigError("preprocess_images takes a sequence of images (file paths or "
                          "arrays), not a single one")
    out = np.empty((len(images), size, size, 3), np.float32)
    for i, image in enumerate(images):
        out[i] = _resized(image, i, size)
    out -= np.asarray(mean, np.float32)
    out /= np.asarray(std, np.float32)
    return out


def _resized(image: str | np.ndarray, position: int, size: int) -> np.ndarray:
    """One image (file path or pixels) cropped and resized, before the rescaling."""
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    if not isinstance(image, str):
        return _crop_resize(size)(tf.constant(_as_image(image, position))).numpy()
    try:
        return _load_crop_resize(size)(tf.constant(image)).numpy()
    except tf.errors.OpError:
        read_image(image)  # raises ImageReadError with the reason
        raise


def dataset_mean(model_name: str, *, paths: Sequence[str] = (),
                 preprocess_url: str | None = None, limit: int | None = None,
                 input_size: int | None = None, batch_size: int = 32, progress: bool = False,
                 storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Per-channel float32 mean of a dataset's preprocessed inputs: IntegratedGradients'
    `"dataset_mean"` baseline, for generation and evaluation alike.

    The inputs are the first `limit` records of the preprocess file `preprocess_url` when one
    is given, else the images `paths` preprocessed for `model_name`. Each image is summed
    alone, in float64, so both sources give the same value for the same images.
    """
    from tqdm import tqdm

    total, pixels = np.zeros(3, np.float64), 0
    with tqdm(total=limit if preprocess_url else len(paths), unit="img", desc="dataset mean",
              disable=not progress) as bar:
        if preprocess_url:
            from dina_datasets.recordio.records import read_records

            for row in read_records(preprocess_url, 0, limit, storage_options=storage_options,
                                    tensors=frozenset({"preprocess_input"})):
                pixels += _add_channel_sums(total, row["preprocess_input"])
                bar.update(1)
        for start in range(0, 0 if preprocess_url else len(paths), batch_size):
            chunk = list(paths[start:start + batch_size])
            for image in preprocess_images(chunk, model_name, input_size=input_size):
                pixels += _add_channel_sums(total, image)
            bar.update(len(chunk))
    if not pixels:
        raise ConfigError(f"no inputs to average for the dataset mean of {model_name} (no "
                          "image and no preprocess record)")
    return (total / pixels).astype(np.float32)


def _add_channel_sums(total: np.ndarray, image: np.ndarray) -> int:
    """Add one (H, W, C) image's per-channel float64 sums to `total`; its pixel count."""
    flat = image.reshape(-1, image.shape[-1])
    total += flat.sum(axis=0, dtype=np.float64)
    return flat.shape[0]
