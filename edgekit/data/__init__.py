"""Calibration and evaluation data: load a set, check that it fits a model, stream preprocessed feeds.

:func:`load_dataset` accepts

* a bundled name (``digits``, ``photos``, ``sentences``) or any folder with a ``manifest.toml``;
* a folder of images (jpg/png/bmp) without a manifest: its ``calibration/`` and ``eval/`` (and ``train/``)
  subfolders if it has them (images in class subfolders, ``eval/<class>/x.jpg``, are labelled by the class's
  index among the sorted class names, said in the set's split rule; folders named by numbers, ``eval/3/``, by that
  number), else its files sorted by a hash of their names, first half calibration;
* a ``.npz`` of tensors fed as-is, any number of model inputs: one array per model input named after it, item
  axis first (a scalar input is an ``(N,)`` array), optionally ``labels`` (N,) and ``split`` (N,) strings
  (``calibration`` / ``eval`` / ``train``; without it: index parity, even = calibration); a single unnamed
  array (``arr_0``) feeds a one-input model; the older ``calibration`` / ``eval`` (+ ``<split>_labels``) arrays too;
* a folder of ``.npz`` files (one item each: one array per input, no item axis, optionally ``label``) or of
  ``.npy`` files (one item of a one-input model each), split like a folder of images;
* a ``.txt`` file: one sentence per line, or ``label<TAB>text`` lines; even lines calibration, odd eval.

:meth:`Dataset.batches` streams: it reads one batch of items at a time and yields feeds keyed by the
model's input names. An item whose array has the model input's full shape (a scalar, a recurrent state
``[2, 1, 128]``) is fed whole, one item per call; one without the batch axis is stacked on it.
:func:`check_compatible` finds every mismatch between data and model up front, naming the input.
Every problem is a one-line :class:`~edgekit.errors.CalibrationError` naming the file.

Modules: ``splits`` (split names and the rules for user data), ``readers/`` (one per stored form),
``preprocess`` (:class:`ImagePreprocess`, :class:`TextPreprocess` and applying them), ``plans`` (fitting
data to a model), ``dataset`` (:class:`Dataset`), ``manifests``, ``bundled`` (where the bundled sets
are) and ``load`` (:func:`load_dataset`).
"""

from edgekit.data.bundled import builtin_calibration_dir, list_datasets
from edgekit.data.dataset import Dataset, check_compatible, check_label_names, check_label_range
from edgekit.data.load import load_dataset
from edgekit.data.plans import Feeds
from edgekit.data.preprocess import ImagePreprocess, Preprocess, TextPreprocess
from edgekit.data.splits import SPLITS, Split

__all__ = ["SPLITS", "Dataset", "Feeds", "ImagePreprocess", "Preprocess", "Split", "TextPreprocess",
           "builtin_calibration_dir", "check_compatible", "check_label_names", "check_label_range", "list_datasets",
           "load_dataset"]
