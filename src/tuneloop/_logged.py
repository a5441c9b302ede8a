"""Turn what a trial logs into compact, picklable data: histogram summaries and samples.

Both run in the worker, so only bin counts and PNG bytes travel to the driver, never raw
tensors. Neither ever raises on odd values: an empty or non-finite input is summarized with a
flag, because logging must not be what breaks a training run.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np

from tuneloop.errors import ConfigError

SAMPLE_KINDS = ("array", "image", "table", "text")
_MAX_ARRAY = 10_000


def to_numpy(values: Any) -> np.ndarray:
    """A flat float64 array from a tensor (any device), an array or a sequence."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def summarize(values: Any, bins: int = 32) -> dict[str, Any]:
    """Bin counts over the finite values and their statistics, plus non-finite count and flag."""
    x = to_numpy(values)
    finite = x[np.isfinite(x)]
    n, nonfinite = int(x.size), int(x.size - finite.size)
    flag = "empty" if x.size == 0 else ("nonfinite" if nonfinite else None)
    if finite.size == 0:
        return {"low": None, "high": None, "counts": np.zeros(bins, "<u4").tobytes(), "n": n,
                "nonfinite": nonfinite, "stats": {}, "flag": flag}
    low, high = float(finite.min()), float(finite.max())
    counts, _ = np.histogram(finite, bins=bins, range=(low, high) if high > low else (low - 0.5, high + 0.5))
    stats = {"mean": float(finite.mean()), "std": float(finite.std()), "min": low, "max": high,
             "abs_max": float(np.abs(finite).max()), "zero_fraction": float(np.mean(finite == 0.0))}
    return {"low": low, "high": high, "counts": counts.astype("<u4").tobytes(), "n": n, "nonfinite": nonfinite,
            "stats": stats, "flag": flag}


def counts_of(blob: bytes) -> list[int]:
    return np.frombuffer(blob, dtype="<u4").astype(int).tolist()


def encode_sample(value: Any, kind: str | None = None) -> tuple[str, bytes | str]:
    """(kind, data): images become PNG bytes; text, arrays and tables JSON text."""
    if kind is not None and kind not in SAMPLE_KINDS:
        raise ConfigError(f"The 'kind' argument of Trial.log_sample must be one of {', '.join(map(repr, SAMPLE_KINDS))}. "
                          f"Got {kind!r} instead.")
    if kind is None:
        if isinstance(value, str):
            kind = "text"
        elif hasattr(value, "savefig"):
            kind = "image"
        elif isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            kind = "table"
        else:
            kind = "array"
    if kind == "text":
        return kind, json.dumps(str(value))
    if kind == "image":
        return kind, _png(value)
    if kind == "table":
        rows = [dict(zip(value, vals, strict=True)) for vals in zip(*value.values(), strict=True)] \
            if isinstance(value, dict) else list(value)
        return kind, json.dumps(rows[:1000], default=_jsonable)
    arr = to_numpy(value)
    return kind, json.dumps({"shape": list(np.shape(value)) if not hasattr(value, "detach") else list(value.shape),
                             "values": [None if not math.isfinite(v) else v for v in arr[:_MAX_ARRAY].tolist()],
                             "truncated": bool(arr.size > _MAX_ARRAY)})


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _png(value: Any) -> bytes:
    """PNG bytes of a matplotlib figure or an HxW / HxWxC array (floats in [0, 1] or uint8)."""
    buf = io.BytesIO()
    if hasattr(value, "savefig"):
        value.savefig(buf, format="png")
        return buf.getvalue()
    from PIL import Image

    arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW (torch) -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ConfigError(f"An image sample must be HxW or HxWxC (C = 1, 3 or 4). Got shape {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:  # not in [0, 1]: stretch to the full range
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        arr = (arr * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def encode_predictions(outputs: Any, targets: Any) -> bytes:
    """Outputs (n,) or (n, k) and targets (n,) as the bytes of an .npz file (float32 outputs)."""
    out, y = _array(outputs), _array(targets)
    if out.ndim not in (1, 2) or y.ndim != 1 or len(out) != len(y) or len(y) == 0:
        raise ConfigError(
            f"Trial.log_predictions needs outputs of shape (n,) or (n, classes) and targets of shape (n,); "
            f"got {out.shape} and {y.shape}. Pass the model's probabilities on the split and its labels."
        )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, outputs=out.astype(np.float32), targets=y)
    return buffer.getvalue()


def decode_predictions(path: Any) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, targets) from a saved predictions file."""
    with np.load(path) as data:
        return data["outputs"], data["targets"]


def _array(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)
