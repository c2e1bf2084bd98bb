"""``--mean``/``--std`` (preprocessing options) are honoured where the source has image preprocessing and
refused, naming the option, where it has none: never silently ignored. Every source kind: ONNX file,
Hugging Face directory (image and text), PyTorch factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgekit
from edgekit.cli import _source, build_parser
from edgekit.errors import ConfigError
from edgekit.sources.base import ModelSource

MEAN, STD = (0.1, 0.2, 0.3), (0.9, 0.8, 0.7)


@pytest.fixture(scope="module")
def image_onnx(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CNN exported to ONNX: one float32 [batch, 3, 16, 16] input."""
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    return edgekit.export(src, tmp_path_factory.mktemp("onnx"), calibration="digits", progress=lambda _m: None).path


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT image classifier saved as save_pretrained leaves it, with its image processor config."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, num_labels=3)
    folder = tmp_path_factory.mktemp("vit")
    transformers.ViTForImageClassification(cfg).save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 16, "width": 16}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    return folder


def _cli_source(*argv: str) -> ModelSource:
    args = build_parser().parse_args(["export", *argv, "--calibration", "digits", "--out", "unused"])
    return _source(args)


def test_onnx_source_honours_mean_and_std(image_onnx: Path) -> None:
    src = _cli_source("--model", str(image_onnx), "--mean", ",".join(map(str, MEAN)), "--std",
                      ",".join(map(str, STD)))
    assert src.preprocess.mean == MEAN and src.preprocess.std == STD  # type: ignore[union-attr]
    assert src.preprocess.size == (16, 16)  # type: ignore[union-attr]
    only_mean = edgekit.load_source(image_onnx, preprocess={"mean": (0.5,)})
    assert only_mean.preprocess.mean == (0.5,) and only_mean.preprocess.std == (0.229, 0.224, 0.225)  # type: ignore[union-attr]


def test_onnx_source_without_an_image_input_refuses_them(tmp_path: Path) -> None:
    from onnx_helpers import make_model

    make_model(tmp_path / "mlp.onnx")
    with pytest.raises(ConfigError) as err:
        _cli_source("--model", str(tmp_path / "mlp.onnx"), "--std", "0.5")
    assert err.value.where == "--std" and "does not apply" in str(err.value) and "mlp.onnx" in str(err.value)


def test_hf_image_classifier_honours_them_over_its_image_processor(vit_dir: Path) -> None:
    src = _cli_source("--model", str(vit_dir), "--mean", ",".join(map(str, MEAN)))
    assert src.task.value == "image-classification"
    assert src.preprocess.mean == MEAN, "--mean wins"  # type: ignore[union-attr]
    assert src.preprocess.std == (0.25, 0.25, 0.25), "the processor's std stays"  # type: ignore[union-attr]
    default = edgekit.load_source(vit_dir)
    assert default.preprocess.mean == (0.5, 0.5, 0.5)  # type: ignore[union-attr]


def test_hf_text_model_refuses_them(minilm_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _cli_source("--model", str(minilm_dir), "--mean", "0.5", "--std", "0.5")
    assert err.value.where == "--mean, --std" and "feature-extraction" in str(err.value)


def test_torch_factory_merges_them_key_by_key_and_refuses_them_for_a_non_image_input(
        tiny_model: tuple[str, Path], tmp_path: Path) -> None:
    spec, ckpt = tiny_model  # its file sets PREPROCESS = size 16x16, mean 0.5, std 0.5
    src = _cli_source("--model", spec, "--checkpoint", str(ckpt), "--mean", "0.25")
    assert src.preprocess.mean == (0.25,) and src.preprocess.std == (0.5, 0.5, 0.5)  # type: ignore[union-attr]
    factory = tmp_path / "mlp.py"
    factory.write_text("from torch import nn\nINPUT_SHAPE = (1, 4)\n\ndef build():\n    return nn.Linear(4, 2)\n")
    with pytest.raises(ConfigError) as err:
        _cli_source("--model", f"{factory}:build", "--mean", "0.5")
    assert err.value.where == "--mean" and "[1, 4]" in str(err.value)
