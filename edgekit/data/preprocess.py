"""Preprocessing: how raw items (images, sentences) become model input, and applying it to one item."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import CalibrationError, ConfigError, require

RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class ImagePreprocess:
    """How raw images become model input: resize to ``size`` (H, W), x/255, (x - mean) / std, ``layout``.

    Gray images are repeated to 3 channels for an RGB model; a 1-channel model gets gray images
    normalised with ``mean[0]`` / ``std[0]``.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ConfigError("image size must be two positive integers (height, width)",
                              where="preprocess.size", got=self.size)
        for key in ("mean", "std"):
            vals = tuple(float(v) for v in getattr(self, key))
            if len(vals) not in (1, 3) or (key == "std" and any(v <= 0 for v in vals)):
                raise ConfigError(f"{key} must hold 1 or 3 numbers" + (", all > 0" if key == "std" else ""),
                                  where=f"preprocess.{key} (--{key})", got=getattr(self, key))
            object.__setattr__(self, key, vals)
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError("unknown layout", where="preprocess.layout", expected="NCHW or NHWC", got=self.layout)
        if self.resize not in RESAMPLE:
            raise ConfigError("unknown resize filter", where="preprocess.resize", expected=", ".join(RESAMPLE),
                              got=self.resize)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", "size": list(self.size), "mean": list(self.mean), "std": list(self.std),
                "layout": self.layout, "resize": self.resize}


@dataclass(frozen=True)
class TextPreprocess:
    """Tokenize with the Hugging Face tokenizer in ``tokenizer_dir``, padded / truncated to ``max_length``.
    ``trust_remote_code``: the tokenizer may import the folder's own Python code (the source's opt-in)."""

    tokenizer_dir: Path
    max_length: int = 64
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokenizer_dir", Path(self.tokenizer_dir))
        if not isinstance(self.max_length, int) or self.max_length < 2:
            raise ConfigError("max_length must be an integer >= 2", where="preprocess.max_length",
                              got=self.max_length)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "text", "tokenizer_dir": str(self.tokenizer_dir), "max_length": self.max_length}
        if self.trust_remote_code:
            out["trust_remote_code"] = True
        return out


Preprocess = ImagePreprocess | TextPreprocess | None
"""``None``: tensor data fed as-is."""


# ------------------------------------------------------------------------------------------- images


def image_array(raw: Any, where: str, pp: ImagePreprocess, channels: int) -> np.ndarray:
    """One image (path or uint8 array) as a float32 array in ``pp.layout`` without the batch axis."""
    pil = require("PIL.Image", "data", "reading images")
    if isinstance(raw, np.ndarray):
        img = pil.fromarray(raw)
    else:
        img = _decode(raw, where)
    img = img.convert("RGB" if channels == 3 else "L")
    h, w = pp.size
    if img.size != (w, h):
        img = img.resize((w, h), getattr(pil.Resampling, pp.resize.upper()))
    x = np.asarray(img, dtype=np.float32).reshape(h, w, channels) / 255.0
    mean = np.asarray(pp.mean if channels == 3 else pp.mean[:1], np.float32)
    std = np.asarray(pp.std if channels == 3 else pp.std[:1], np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1) if pp.layout == "NCHW" else x)


def _decode(path: Path, where: str) -> Any:
    pil = require("PIL.Image", "data", "reading images")
    ops = require("PIL.ImageOps", "data", "reading images")
    try:
        with pil.open(path) as im:
            im.load()
            img = ops.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, pil.DecompressionBombError) as exc:
        raise CalibrationError("cannot decode the image", where=where, expected="a JPEG, PNG or BMP image",
                               got=f"{type(exc).__name__}: {exc}", hint="replace or remove the file") from exc
    if img.mode.startswith("I") or img.mode == "F":            # 16-bit / float gray
        a = np.asarray(img, dtype=np.float64)
        img = pil.fromarray(np.clip(a / 257.0 if a.max() > 255 else a, 0, 255).astype(np.uint8))
    elif img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")      # drop alpha
    return img


# --------------------------------------------------------------------------------------------- text


@lru_cache(maxsize=4)
def tokenizer(directory: str, trust_remote_code: bool = False) -> Any:
    """The Hugging Face tokenizer saved in ``directory`` (offline; cached for the last few folders). Its own
    Python code (``auto_map``) runs only with ``trust_remote_code``, never after a prompt on stdin."""
    transformers = require("transformers", "hf", "tokenizing text")
    if not Path(directory).is_dir():
        raise CalibrationError("tokenizer folder not found", where=directory,
                               hint="TextPreprocess.tokenizer_dir must be a Hugging Face tokenizer folder")
    try:
        return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True,
                                                          trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many kinds
        raise CalibrationError(f"cannot load the tokenizer ({type(exc).__name__})", where=directory,
                               hint="save it with tokenizer.save_pretrained") from exc
