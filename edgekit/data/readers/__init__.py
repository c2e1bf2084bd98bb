"""Readers, one per stored form of a data set; each counts, labels and streams the raw items of a split."""

from edgekit.data.readers.arrays import ARRAY_SUFFIXES, ArrayFiles
from edgekit.data.readers.base import Item, Reader, check_labels, open_npz
from edgekit.data.readers.images import IMAGE_SUFFIXES, ImageArrays, ImageFiles, folder_reader, split_subfolders
from edgekit.data.readers.tensors import NpzTensors
from edgekit.data.readers.text import TextLines

__all__ = ["ARRAY_SUFFIXES", "IMAGE_SUFFIXES", "ArrayFiles", "ImageArrays", "ImageFiles", "Item", "NpzTensors",
           "Reader", "TextLines", "check_labels", "folder_reader", "open_npz", "split_subfolders"]
