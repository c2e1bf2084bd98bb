"""Calibration and evaluation data: load a set, check that it fits a model, stream preprocessed feeds.

:func:`load_dataset` accepts

* a bundled name (``digits``, ``photos``, ``sentences``) or any folder with a ``manifest.toml``;
* a folder of images (jpg/png/bmp) without a manifest: its ``calibration/`` and ``eval/`` (and ``train/``)
  subfolders if it has them, else its files sorted by a hash of their names, first half calibration;
* a ``.npz`` of tensors fed as-is: arrays ``calibration`` and ``eval`` (optionally ``train`` and
  ``<split>_labels``), or one array (optionally ``labels``) split by index parity, even = calibration;
* a ``.txt`` file: one sentence per line, or ``label<TAB>text`` lines; even lines calibration, odd eval.

:meth:`Dataset.batches` streams: it reads one batch of items at a time and yields feeds keyed by the
model's input names. :func:`check_compatible` finds every mismatch between data and model up front.
Every problem is a one-line :class:`~edgekit.errors.CalibrationError` naming the file.

Modules: ``splits`` (split names and the rules for user data), ``readers/`` (one per stored form),
``preprocess`` (:class:`ImagePreprocess`, :class:`TextPreprocess` and applying them), ``plans`` (fitting
data to a model), ``dataset`` (:class:`Dataset`), ``manifests``, ``bundled`` (where the bundled sets
are) and ``load`` (:func:`load_dataset`).
"""

from edgekit.data.bundled import builtin_calibration_dir, list_datasets
from edgekit.data.dataset import Dataset, check_compatible, check_label_range
from edgekit.data.load import load_dataset
from edgekit.data.plans import Feeds
from edgekit.data.preprocess import ImagePreprocess, Preprocess, TextPreprocess
from edgekit.data.splits import SPLITS, Split

__all__ = ["SPLITS", "Dataset", "Feeds", "ImagePreprocess", "Preprocess", "Split", "TextPreprocess",
           "builtin_calibration_dir", "check_compatible", "check_label_range", "list_datasets", "load_dataset"]
