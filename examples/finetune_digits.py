"""Fine-tune EfficientNet-Lite0 (ImageNet weights) on the scikit-learn digits and save it as a user would.

Usage: ``python examples/finetune_digits.py --out DIR [--epochs N] [--seed S]``

Data: ``sklearn.datasets.load_digits()`` (1,797 labelled 8x8 images, values 0..16), split with
``perm = np.random.default_rng(0).permutation(1797)``: ``perm[:1200]`` train, ``perm[1200:]`` held out
(597 items). Each image becomes uint8 (``round(x * 255 / 16)``), is resized to 64x64 with PIL bilinear,
repeated to 3 channels, scaled to [0, 1] and normalised with mean 0.5 / std 0.5 — the preprocessing that
``digits_model.PREPROCESS`` declares and edgekit applies at evaluation.

Training: AdamW (lr 1e-3, batch 32), one-cycle LR schedule run to its end (models trained to the end of
the schedule kept their accuracy under int8; early-stopped ones did not), random shifts of up to 4 px.

Writes ``DIR/model.safetensors`` and ``DIR/model.pt`` (the same ``state_dict``) and, last,
``DIR/train.json`` (settings, file hashes, time, held-out accuracy). A rerun with the same settings and
script whose weight files still match the recorded hashes prints "reusing" and exits at once.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _demo_cache import is_cached, source_hash, write_record
from digits_model import INPUT_SHAPE, PREPROCESS, build_model
from PIL import Image

from edgekit.artifacts import atomic_write_bytes

HERE = Path(__file__).resolve().parent

DEFAULT_EPOCHS = 8
DEFAULT_SEED = 0
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
MAX_SHIFT = 4
N_TRAIN = 1200
WEIGHT_FILES = ("model.safetensors", "model.pt")


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The fixed train / held-out split of the 1,797 digits (train: 1,200, held out: 597)."""
    perm = np.random.default_rng(0).permutation(1797)
    return perm[:N_TRAIN], perm[N_TRAIN:]


def preprocess(image: np.ndarray) -> np.ndarray:
    """One 8x8 digit (values 0..16) -> float32 (3, 64, 64) model input, through PIL as evaluation does."""
    u8 = np.round(image * 255.0 / 16.0).astype(np.uint8)
    size = PREPROCESS["size"]
    resized = Image.fromarray(u8).convert("RGB").resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
    x = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(PREPROCESS["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(PREPROCESS["std"], dtype=np.float32)[:, None, None]
    return (x - mean) / std


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits preprocessed, ``(N, 3, 64, 64)`` float32, with their int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.stack([preprocess(img) for img in digits.images])
    assert x.shape[1:] == INPUT_SHAPE[1:], x.shape
    return torch.from_numpy(x), torch.from_numpy(digits.target.astype(np.int64))


def random_shift(batch: torch.Tensor, gen: torch.Generator, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with the background value."""
    n, _, h, w = batch.shape
    background = float(batch.amin())
    padded = F.pad(batch, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 128) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``x``/``y``."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch):
        logits = model(x[start:start + batch])
        correct += int((logits.argmax(1) == y[start:start + batch]).sum())
    return correct / len(x)


def train(epochs: int, seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune from ImageNet weights for ``epochs`` full epochs; return the model and a summary."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = load_digits_tensors()
    train_idx, eval_idx = split_indices()
    x_train, y_train = x[train_idx], y[train_idx]
    x_eval, y_eval = x[eval_idx], y[eval_idx]

    model = build_model(pretrained=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = -(-len(x_train) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE,
                                                   total_steps=epochs * steps_per_epoch, pct_start=0.2)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * BATCH_SIZE:(step + 1) * BATCH_SIZE]
            loss = F.cross_entropy(model(random_shift(x_train[idx], gen)), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
        eval_acc = accuracy(model, x_eval, y_eval)
        elapsed = time.perf_counter() - start
        history.append({"epoch": epoch, "train_loss": round(total_loss / len(x_train), 5),
                        "eval_accuracy": round(eval_acc, 5), "seconds": round(elapsed, 1)})
        print(f"epoch {epoch}/{epochs}: train loss {total_loss / len(x_train):.4f}  "
              f"held-out accuracy {eval_acc:.4f}  ({elapsed:.0f} s)", flush=True)
    summary = {"seconds": round(time.perf_counter() - start, 1), "eval_accuracy": history[-1]["eval_accuracy"],
               "eval_items": len(eval_idx), "history": history}
    return model, summary


def settings(epochs: int, seed: int) -> dict[str, Any]:
    """What determines the trained weights (compared on a rerun to decide whether to reuse them)."""
    scripts = (HERE / "finetune_digits.py", HERE / "digits_model.py")
    return {"epochs": epochs, "seed": seed, "batch_size": BATCH_SIZE, "lr": LEARNING_RATE,
            "script_sha256": source_hash(scripts)}


def save(out: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    """Write both weight files, then ``train.json`` with their hashes (each atomically).

    Both are serialised in memory first: the bytes then depend only on the weights (``torch.save`` to a
    file would embed the random temporary file name).
    """
    from safetensors.torch import save as safetensors_bytes

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", safetensors_bytes(state))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out / "model.pt", buffer.getvalue())
    write_record(out, record, WEIGHT_FILES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights and train.json")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="length of the LR schedule")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")

    wanted = settings(args.epochs, args.seed)
    if is_cached(args.out, wanted, WEIGHT_FILES):
        print(f"reusing {args.out} (train.json settings and weight hashes match)")
        return 0
    torch.set_num_threads(2)
    model, summary = train(args.epochs, args.seed)
    record = {"epochs": args.epochs, "settings": wanted, **summary, "torch": torch.__version__}
    save(args.out, model, record)
    print(f"saved {args.out}: held-out accuracy {summary['eval_accuracy']:.4f} "
          f"on {summary['eval_items']} items, {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
