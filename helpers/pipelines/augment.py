"""A CPU-heavy augmentation, in Pillow and in TensorFlow ops. Needs NumPy, TensorFlow, Pillow; copy with image_files.py.

Random augmentation of the fish JPEGs (lesson 06), written twice:

- :func:`augment` and :class:`AugmentedImageDataset`: Pillow + NumPy in ``__getitem__`` of a
  ``keras.utils.PyDataset`` (a subclass of lesson 04's ``ImageFileDataset`` of ``image_files.py``),
  made parallel by its ``workers`` / ``use_multiprocessing``;
- :func:`augment_tf` and :func:`augmented_jpeg_dataset`: the same steps with TensorFlow ops in a
  ``tf.data`` ``map``, made parallel by ``num_parallel_calls``.

The steps, per image: decode the JPEG; rotate by a random angle (0-360 degrees) on a canvas that
grows to hold the whole rotated image; place it at a random offset on a square up to ``ZOOM_OUT``
times larger and shrink that to ``out_size`` (a random crop of a padded canvas, then a resize);
blur by a random radius; flip left-right half of the time; jitter brightness, contrast and
saturation; add Gaussian noise. Every step keeps every fish inside the frame, so the count (the
target) stays right. Pixels outside the original image take its mean colour.

Every random number comes from a seed made of ``(seed, epoch, sample)``: a sample gets the same
augmentation in the same epoch whichever process or thread computes it, with any number of workers.
The two versions draw different numbers and resample differently, so they do the same *kind* of
work, not the same pixels.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageFilter

from .image_files import BadImageError, ImageFileDataset, read_bytes

ZOOM_OUT = 1.25
"""Largest side of the padded square, as a multiple of the rotated image's side."""
MAX_BLUR = 1.0
"""Largest Gaussian blur radius, in pixels of the output image."""
BRIGHTNESS, CONTRAST, SATURATION = 0.1, (0.8, 1.2), (0.8, 1.2)
MAX_NOISE = 0.03
"""Largest standard deviation of the added noise (pixel values are in [0, 1])."""
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# -- Pillow + NumPy ---------------------------------------------------------------------------
def open_rgb(data: bytes, path: str | os.PathLike = "<bytes>") -> Image.Image:
    """Decode JPEG (or any Pillow) bytes to an RGB image; :class:`BadImageError` naming ``path``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def augment(image: Image.Image, rng: np.random.Generator, out_size: int) -> np.ndarray:
    """One random augmentation of an RGB image: float32 in [0, 1], shape ``(out_size, out_size, 3)``.

    The random draws come from ``rng`` in a fixed order, so the same ``rng`` state gives the same
    result.
    """
    fill = tuple(int(round(c)) for c in np.asarray(image, np.float32).mean(axis=(0, 1)))
    img = image.rotate(rng.uniform(0, 360), resample=Image.BICUBIC, expand=True, fillcolor=fill)
    side = max(img.size)
    padded = int(round(side * rng.uniform(1, ZOOM_OUT)))
    canvas = Image.new("RGB", (padded, padded), fill)
    canvas.paste(img, (int(rng.integers(0, padded - img.width + 1)), int(rng.integers(0, padded - img.height + 1))))
    img = canvas.resize((out_size, out_size), Image.LANCZOS)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, MAX_BLUR)))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x = np.asarray(img, np.float32) * np.float32(1 / 255)
    x += np.float32(rng.uniform(-BRIGHTNESS, BRIGHTNESS))
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = (x - mean) * np.float32(rng.uniform(*CONTRAST)) + mean
    gray = (x @ _LUMA)[..., None]
    x = gray + (x - gray) * np.float32(rng.uniform(*SATURATION))
    x += rng.normal(0, rng.uniform(0, MAX_NOISE), x.shape).astype(np.float32)
    return np.clip(x, 0, 1, out=x)


class AugmentedImageDataset(ImageFileDataset):
    """Batches ``(images, targets)``: each file decoded and randomly augmented (:func:`augment`).

    Args:
        paths, targets, batch_size, shuffle, seed: as ``ImageFileDataset`` of ``image_files.py``
            (a new seeded order of the samples every epoch when ``shuffle``).
        out_size: side of the square images the model gets.
        augmented: ``False`` skips the augmentation (decode and resize only), as for validation.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for ``keras.utils.PyDataset``.

    The random numbers of sample ``row`` (its position in ``paths``) in epoch ``epoch`` come from
    ``np.random.default_rng([seed, epoch, row])``: a batch is the same whichever worker computes it.
    ``epoch`` advances in ``on_epoch_end``, which Keras calls in the training process; worker
    processes receive a fresh copy of the dataset every epoch, so they see the new value. Only the
    paths and targets travel with the dataset: it pickles small for spawned workers.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], targets: Any, batch_size: int, out_size: int,
                 shuffle: bool = True, seed: int = 0, augmented: bool = True, **kwargs: Any) -> None:
        super().__init__(paths, targets, batch_size, image_size=out_size, shuffle=shuffle, seed=seed, **kwargs)
        self.out_size = int(out_size)
        self.augmented = augmented

    def sample(self, row: int) -> np.ndarray:
        """Sample ``row`` as the model gets it in the current epoch."""
        path = self.paths[row]
        image = open_rgb(read_bytes(path), path)
        if not self.augmented:
            return np.asarray(image.resize((self.out_size, self.out_size), Image.LANCZOS), np.float32) / 255
        return augment(image, np.random.default_rng([self.seed, self.epoch, int(row)]), self.out_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return np.stack([self.sample(row) for row in rows]), self.targets[rows]


# -- TensorFlow ops ---------------------------------------------------------------------------
def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor, taps: int = 9) -> tf.Tensor:
    """Separable Gaussian blur of an ``(h, w, 3)`` float image (``sigma`` ~ 0: unchanged)."""
    x = tf.range(taps, dtype=tf.float32) - (taps - 1) / 2
    k = tf.exp(-x ** 2 / (2 * tf.maximum(sigma, 1e-3) ** 2))
    k = k / tf.reduce_sum(k)
    batch = image[None]
    batch = tf.nn.depthwise_conv2d(batch, tf.tile(tf.reshape(k, (taps, 1, 1, 1)), (1, 1, 3, 1)), [1, 1, 1, 1], "SAME")
    batch = tf.nn.depthwise_conv2d(batch, tf.tile(tf.reshape(k, (1, taps, 1, 1)), (1, 1, 3, 1)), [1, 1, 1, 1], "SAME")
    return batch[0]


def augment_tf(image: tf.Tensor, seed: tf.Tensor, out_size: int) -> tf.Tensor:
    """:func:`augment` with TensorFlow ops: a uint8 ``(h, w, 3)`` image and a shape-[2] int seed
    (stateless random ops) -> float32 in [0, 1], ``(out_size, out_size, 3)``.

    Rotation, padding and offset are one projective transform onto a canvas of the source's size,
    which is then resized to ``out_size`` with antialiasing, and blurred.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=11)
    uniform = lambda i, lo, hi: tf.random.stateless_uniform([], seeds[i], lo, hi)  # noqa: E731
    x = tf.cast(image, tf.float32) / 255
    h, w = tf.cast(tf.shape(x)[0], tf.float32), tf.cast(tf.shape(x)[1], tf.float32)
    mean = tf.reduce_mean(x, axis=(0, 1))
    theta = uniform(0, 0.0, 2 * math.pi)
    cos, sin = tf.cos(theta), tf.sin(theta)
    rotated = tf.maximum(tf.abs(w * cos) + tf.abs(h * sin), tf.abs(w * sin) + tf.abs(h * cos))  # its box
    padded = rotated * uniform(1, 1.0, ZOOM_OUT)
    offset = tf.stack([uniform(2, 0.0, 1.0), uniform(3, 0.0, 1.0)]) * (padded - rotated)
    canvas = tf.shape(x)[:2]
    scale = padded / tf.cast(canvas[1], tf.float32)                    # canvas pixel -> padded square
    # canvas (u, v) -> padded (scale u, scale v) -> centred on the rotated box -> rotate back -> source
    cu = offset[0] + rotated / 2
    cv = offset[1] + rotated / 2
    a0, a1 = scale * cos, scale * sin
    b0, b1 = -scale * sin, scale * cos
    a2 = -cu * cos - cv * sin + w / 2
    b2 = cu * sin - cv * cos + h / 2
    transform = tf.reshape(tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0]), (1, 8))
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=(x - mean)[None], transforms=transform, output_shape=canvas, fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")[0] + mean
    y = tf.image.resize(moved, (out_size, out_size), method="lanczos3", antialias=True)
    y = _gaussian_blur(y, uniform(4, 0.0, MAX_BLUR))
    y = tf.image.stateless_random_flip_left_right(y, seeds[5])
    y = tf.image.stateless_random_brightness(y, BRIGHTNESS, seeds[6])
    y = tf.image.stateless_random_contrast(y, *CONTRAST, seeds[7])
    y = tf.image.stateless_random_saturation(y, *SATURATION, seeds[8])
    y = y + tf.random.stateless_normal(tf.shape(y), seeds[9]) * uniform(10, 0.0, MAX_NOISE)
    return tf.clip_by_value(y, 0.0, 1.0)


def augmented_jpeg_dataset(paths: Sequence[str | os.PathLike], labels: Sequence[float], batch_size: int,
                           out_size: int, *, num_parallel_calls: int | None = tf.data.AUTOTUNE, seed: int = 0,
                           shuffle: bool = True, epochs: int | None = None, deterministic: bool | None = None,
                           prefetch: bool = True, as_uint8: bool = False) -> tf.data.Dataset:
    """Paths + labels -> per epoch a seeded order -> ``map(read_file, decode_jpeg, augment_tf)`` ->
    batch -> prefetch. ``epochs=None`` repeats for ever (pass ``steps_per_epoch`` to ``fit``).
    ``as_uint8``: images as uint8 (0-255, rounded), for a model that scales them itself
    (``fish_counter(uint8_input=True)``): a quarter of the bytes to copy to a GPU.

    The order of epoch ``e`` and the seed of sample ``row`` in it are stateless functions of
    ``(seed, e, row)``, so the output does not depend on ``num_parallel_calls``.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    n = len(paths)
    path_t = tf.constant([os.fspath(p) for p in paths])
    label_t = tf.constant(np.asarray(labels, np.float32))

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        if shuffle:
            order = tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.constant(seed, tf.int64), epoch])))
        else:
            order = tf.range(n)
        return tf.data.Dataset.from_tensor_slices(tf.cast(order, tf.int64)).map(lambda row: (row, epoch))

    def load(row: tf.Tensor, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_jpeg(tf.io.read_file(path_t[row]), channels=3)
        sample_seed = tf.random.experimental.stateless_fold_in(tf.stack([tf.constant(seed, tf.int64), epoch]), row)
        image = augment_tf(image, sample_seed, out_size)
        if as_uint8:
            image = tf.cast(tf.round(image * 255), tf.uint8)
        return image, label_t[row]

    epochs_ds = tf.data.Dataset.counter() if epochs is None else tf.data.Dataset.range(epochs)
    ds = epochs_ds.flat_map(one_epoch).map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds
