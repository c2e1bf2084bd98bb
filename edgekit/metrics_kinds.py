"""The task metrics of the output kinds that need more than an element-wise comparison (used by
:mod:`edgekit.metrics`): what the user says an output is (:class:`KindSpec`, ``--output-kind
NAME=KIND[:PAIR][@VALUE]``), dense maps (IoU of the thresholded maps), detections (boxes matched by IoU at the
source's operating point) and sequences (per-step class scores decoded the CTC way: argmax, repeats collapsed,
blank dropped; compared by exact match and edit distance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConfigError
from edgekit.results import OUTPUT_KINDS

MATCH_IOU = 0.5
"""Two boxes are the same detection when their IoU reaches this (the PASCAL VOC / COCO@0.5 convention)."""

SPEC_SYNTAX = "NAME=KIND[:PAIR][@VALUE]"
SPEC_HELP = ("KIND one of " + " | ".join(OUTPUT_KINDS) + "; @VALUE: the threshold of binary/dense/detection scores "
             "or the blank class of a sequence (default 0); :PAIR: the scores output of a detection's boxes")


@dataclass(frozen=True)
class KindSpec:
    """What one output is: its ``kind``, the output it pairs with (``pair``: a detection's scores) and ``value``
    (the decision threshold of a binary score, a dense map or a detection's scores; the blank class of a
    sequence). ``None`` fields take their defaults (the threshold from the values, blank 0)."""

    kind: str
    pair: str | None = None
    value: float | None = None

    @classmethod
    def parse(cls, text: str, where: str) -> KindSpec:
        """``KIND[:PAIR][@VALUE]`` (``dense@0.3``, ``detection:scores@0.5``, ``sequence@0``)."""
        body, at, value = text.strip().partition("@")
        kind, colon, pair = body.partition(":")
        kind, pair = kind.strip(), pair.strip()
        number: float | None = None
        if at:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
        if kind not in OUTPUT_KINDS or (colon and (not pair or kind != "detection")) or \
                (number is not None and not math.isfinite(number)) or \
                (kind == "sequence" and number is not None and (number < 0 or number != int(number))):
            raise ConfigError("not an output kind", where=where, got=text, expected=f"{SPEC_SYNTAX}: {SPEC_HELP}")
        if number is not None and kind not in ("binary", "dense", "detection", "sequence"):  # it was ignored
            raise ConfigError(f"@{value.strip()} does not apply to a {kind} output (it has no threshold)", where=where,
                              got=text, expected="@VALUE only with binary, dense, detection (a threshold) or "
                                                 "sequence (the blank class)", hint=f"write {kind} alone")
        return cls(kind, pair or None, number)

    def text(self) -> str:
        """The spec as the user writes it."""
        return self.kind + (f":{self.pair}" if self.pair else "") + (f"@{self.value:g}" if self.value is not None
                                                                    else "")


# --- dense maps -------------------------------------------------------------------------------------------

def dense_iou(ref: np.ndarray, cand: np.ndarray, threshold: float) -> float:
    """Mean over channels of the IoU of the maps thresholded at ``threshold``, summed over the items; the
    channel axis is the smaller of an item's first and last axes (NCHW or NHWC) where it has three or more."""
    a, b = ref > threshold, cand > threshold
    if a.ndim >= 4:
        axis = 1 if a.shape[1] <= a.shape[-1] else a.ndim - 1
        a, b = np.moveaxis(a, axis, 1), np.moveaxis(b, axis, 1)
        a, b = a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
    else:
        a, b = a.reshape(a.shape[0], 1, -1), b.reshape(b.shape[0], 1, -1)
    inter = np.sum(a & b, axis=(0, 2))
    union = np.sum(a | b, axis=(0, 2))
    ious = [float(i) / float(u) for i, u in zip(inter, union, strict=True) if u > 0]
    return float(np.mean(ious)) if ious else 1.0


# --- detection ----------------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (M, 4) with every box of ``b`` (K, 4), both x1, y1, x2, y2: (M, K). Boxes given
    with their corners swapped are put right first; an empty box overlaps nothing."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = np.concatenate([np.minimum(a[:, :2], a[:, 2:4]), np.maximum(a[:, :2], a[:, 2:4])], axis=1)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:4]), np.maximum(b[:, :2], b[:, 2:4])], axis=1)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:4] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:4] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def split_detections(boxes: np.ndarray, scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (N, K, 4), score (N, K), class (N, K)) of a detection output: ``scores`` (N, K), (N, K, 1) or
    (N, K, C) (the best class per box), else the boxes' own column 4 (score) and 5 (class), if any."""
    boxes = np.asarray(boxes, np.float64)
    if scores is None:
        score = boxes[..., 4]
        cls = boxes[..., 5] if boxes.shape[-1] > 5 else np.zeros_like(score)
        return boxes[..., :4], score, np.rint(cls).astype(np.int64)
    s = np.asarray(scores, np.float64).reshape(*boxes.shape[:2], -1)
    cls = s.argmax(axis=2) if s.shape[2] > 1 else np.zeros(s.shape[:2], np.int64)
    return boxes[..., :4], s.max(axis=2), cls


def match_detections(ref: tuple[np.ndarray, np.ndarray, np.ndarray], cand: tuple[np.ndarray, np.ndarray, np.ndarray],
                     threshold: float) -> dict[str, float | None]:
    """Recall / precision of the candidate's detections against the source's, both those scoring above
    ``threshold``: per item, the source's detections in falling score order each take the unmatched candidate
    detection of the same class with the highest IoU (at least :data:`MATCH_IOU`). Also the mean IoU of the
    matches and the source's detections per item. No detections on either side is perfect agreement."""
    matched = n_ref = n_cand = 0
    ious: list[float] = []
    for i in range(ref[0].shape[0]):
        rk = np.flatnonzero(ref[1][i] > threshold)
        ck = np.flatnonzero(cand[1][i] > threshold)
        n_ref, n_cand = n_ref + len(rk), n_cand + len(ck)
        if not len(rk) or not len(ck):
            continue
        rk = rk[np.argsort(-ref[1][i][rk], kind="stable")]
        iou = box_iou(ref[0][i][rk], cand[0][i][ck])
        iou[ref[2][i][rk][:, None] != cand[2][i][ck][None, :]] = 0.0
        free = np.ones(len(ck), bool)
        for r in range(len(rk)):
            row = np.where(free, iou[r], -1.0)
            j = int(np.argmax(row))
            if row[j] >= MATCH_IOU:
                free[j] = False
                matched += 1
                ious.append(float(row[j]))
    items = max(ref[0].shape[0], 1)
    return {"recall": matched / n_ref if n_ref else (1.0 if not n_cand else 0.0),
            "precision": matched / n_cand if n_cand else (1.0 if not n_ref else 0.0),
            "match_iou": float(np.mean(ious)) if ious else None, "detections": n_ref / items}


# --- sequences ----------------------------------------------------------------------------------------------

def decode_sequences(scores: np.ndarray, blank: int = 0) -> list[tuple[int, ...]]:
    """Greedy CTC decoding of (N, T, C) per-step class scores: the argmax class per step, repeats collapsed,
    the ``blank`` class dropped; one tuple of class indices per item."""
    best = np.asarray(scores).argmax(axis=-1)
    out: list[tuple[int, ...]] = []
    for row in best.reshape(best.shape[0], -1):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        out.append(tuple(int(c) for c in row[keep] if c != blank))
    return out


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def sequence_metrics(ref: np.ndarray, cand: np.ndarray, blank: int = 0) -> dict[str, float]:
    """Agreement of the decoded sequences (:func:`decode_sequences`): the share of items decoded identically and
    the character error rate (edit distance summed over the items / the source's decoded length summed; when the
    source decodes nothing at all, the candidate's decoded length over the items)."""
    r, c = decode_sequences(ref, blank), decode_sequences(cand, blank)
    dist = sum(edit_distance(a, b) for a, b in zip(r, c, strict=True))
    length = sum(len(a) for a in r)
    return {"sequence_agreement": float(np.mean([a == b for a, b in zip(r, c, strict=True)])) if r else 1.0,
            "char_error_rate": dist / length if length else dist / max(len(r), 1)}
