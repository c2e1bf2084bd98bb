"""The metric functions, one implementation each: cosine similarity (:func:`row_cosine` per item,
:func:`cosine` of two whole arrays), token pooling (:func:`pool_tokens`), and :func:`compare` for the
held-out validation. Everything else (the export checks in :mod:`edgekit.formats.base`, the quantizers'
checks in :mod:`edgekit.quantization.checks`, the benchmarks) calls these.

Cosine conventions: two all-zero vectors agree (1.0); a zero vector against a nonzero one does not (0.0),
so an int8 model that collapsed to zeros never scores as a match.

Metrics use the model's first output. For feature extraction with an ``attention_mask`` input the
outputs are mean-pooled over real tokens first (the sentence embedding users actually consume).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from edgekit.results import CrossRuntime, Metrics
from edgekit.types import Task


def pool_tokens(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of a (B, S, H) output over the real tokens of a (B, S) ``attention_mask``: (B, H)."""
    m = mask.astype(np.float32)[..., None]
    pooled: np.ndarray = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled


def item_rows(out: np.ndarray, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """One row per batch item of ``out``; a (B, S, H) token output with a matching ``attention_mask``
    input is mean-pooled over the real tokens first (padding positions carry no meaning)."""
    x = np.asarray(out, dtype=np.float32)
    mask = feeds.get("attention_mask")
    if x.ndim == 3 and mask is not None and np.shape(mask) == x.shape[:2]:
        x = pool_tokens(x, np.asarray(mask))
    return x.reshape(x.shape[0] if x.ndim > 1 else 1, -1)


def primary_output(outputs: Sequence[np.ndarray], feeds: Mapping[str, np.ndarray], task: Task) -> np.ndarray:
    """The array metrics are computed on, one row per batch item: logits, or pooled embeddings."""
    out = np.asarray(outputs[0], dtype=np.float32)
    if task is Task.FEATURE_EXTRACTION and out.ndim == 3 and "attention_mask" in feeds:
        out = pool_tokens(out, feeds["attention_mask"])
    return out.reshape(out.shape[0], -1)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of two (N, D) arrays: 1.0 where both rows are all zeros, 0.0 where
    exactly one is (a collapsed output is not a match)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = np.sum(a64 * b64, axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    both_zero = ~np.any(a64, axis=1) & ~np.any(b64, axis=1)
    out: np.ndarray = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(both_zero, 1.0, 0.0))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened (conventions of :func:`row_cosine`)."""
    return float(row_cosine(np.reshape(a, (1, -1)), np.reshape(b, (1, -1)))[0])


def compare(reference: np.ndarray, candidate: np.ndarray, *, classification: bool,
            labels: np.ndarray | None = None) -> Metrics:
    """Metrics for two (N, D) arrays of per-item outputs; ``labels`` (N,) enables task accuracy."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shape mismatch {reference.shape} vs {candidate.shape}")
    n = int(reference.shape[0])
    cos = row_cosine(reference, candidate)
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    top1 = top5 = acc = src_acc = None
    if classification and reference.shape[1] > 1:
        ref_top = reference.argmax(axis=1)
        cand_top = candidate.argmax(axis=1)
        top1 = float(np.mean(ref_top == cand_top))
        k = min(5, reference.shape[1])
        cand_top5 = np.argsort(-candidate, axis=1)[:, :k]
        top5 = float(np.mean(np.any(cand_top5 == ref_top[:, None], axis=1)))
        if labels is not None and len(labels) == n:
            acc = float(np.mean(cand_top == labels))
            src_acc = float(np.mean(ref_top == labels))
    return Metrics(n=n, cosine_mean=float(np.mean(cos)), cosine_min=float(np.min(cos)),
                   max_abs=float(diff.max()) if diff.size else 0.0, mean_abs=float(diff.mean()) if diff.size else 0.0,
                   top1_agreement=top1, top5_agreement=top5, accuracy=acc, source_accuracy=src_acc)


def collect(run: Iterable[tuple[Mapping[str, np.ndarray], Sequence[np.ndarray]]], task: Task) -> np.ndarray:
    """Stack the primary outputs of (feeds, outputs) pairs into one (N, D) array."""
    rows = [primary_output(outs, feeds, task) for feeds, outs in run]
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), dtype=np.float32)


def cross_runtime_agreement(artifact: str, reference_runtime: str, other_runtime: str, reference: np.ndarray,
                            other: np.ndarray, *, classification: bool, atol: float = 1e-3, rtol: float = 1e-3,
                            min_cosine: float = 0.9999) -> CrossRuntime:
    """Disagreement of two runtimes on one artifact: ``other``'s (N, D) outputs against ``reference``'s.

    Flagged (``within_tolerance=False``) when max-abs exceeds ``atol + rtol * max|reference|`` or the
    minimum per-item cosine falls below ``min_cosine`` (the fp32 export tolerance by default).
    """
    m = compare(reference, other, classification=classification)
    limit = atol + rtol * (float(np.max(np.abs(reference))) if reference.size else 0.0)
    ok = m.max_abs <= limit and m.cosine_min >= min_cosine
    return CrossRuntime(artifact, reference_runtime, other_runtime, m,
                        {"max_abs": limit, "min_cosine": min_cosine, "atol": atol, "rtol": rtol}, ok)
