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
    try:
        counts, _ = np.histogram(finite, bins=bins, range=(low, high) if high > low else (low - 0.5, high + 0.5))
    except ValueError:  # a range narrower than the floats can cut into bins (1e20 +- 0.5 is 1e20): one bin holds all
        counts = np.zeros(bins, np.int64)
        counts[bins // 2] = finite.size
    stats = {"mean": float(finite.mean()), "std": float(finite.std()), "min": low, "max": high,
             "abs_max": float(np.abs(finite).max()), "zero_fraction": float(np.mean(finite == 0.0))}
    return {"low": low, "high": high, "counts": counts.astype("<u4").tobytes(), "n": n, "nonfinite": nonfinite,
            "stats": stats, "flag": flag}


def summarize_rows(values: Any, bins: int = 32) -> list[dict[str, Any]]:
    """``[summarize(row) for row in values]`` for a 2-D batch (one row per population member), in a
    few passes over the batch instead of a histogram call per row. Equal to it value for value:
    every row takes the float64 arithmetic of ``np.histogram``'s equal-bin path (its edges, bin
    indices and edge corrections; elementwise, so torch's in-place passes give the same numbers)
    and numpy's own row reductions for the statistics. Rows that are not plain (a non-finite or
    too narrow range, an empty row) go through :func:`summarize` itself."""
    import torch

    t = values.detach().float().cpu() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    t = t.to(torch.float64).contiguous()
    if t.dim() != 2:
        raise ValueError(f"summarize_rows takes a 2-D batch, got shape {tuple(t.shape)}")
    x = t.numpy()
    rows, size = x.shape
    if rows == 0:
        return []
    if size == 0:
        return [summarize(row, bins) for row in x]
    finite = np.isfinite(x).all(axis=1)
    with np.errstate(all="ignore"):  # rows where these overflow are not plain: summarize takes them
        low, high = x.min(axis=1), x.max(axis=1)
        first = np.where(high > low, low, low - 0.5)  # summarize's range: (low, high), or a unit one
        last = np.where(high > low, high, high + 0.5)
        denom = last - first
        plain = finite & (first < last) & np.isfinite(denom) & (denom / bins != 0)
        edges = np.zeros((rows, bins + 1))  # as np.linspace computes them: k * step + first, the top one last
        edges[plain] = (np.arange(bins + 1, dtype=np.float64)[:, None] * (denom[plain] / bins) + first[plain]).T
        edges[plain, -1] = last[plain]
        plain &= (edges[:, 1:] > edges[:, :-1]).all(axis=1)  # np.histogram refuses the others: summarize says how
    out: list[dict[str, Any]] = [{} for _ in range(rows)]
    if plain.any():
        keep = torch.from_numpy(np.flatnonzero(plain))
        p = t.index_select(0, keep) if len(keep) < rows else t
        f, d, top = (torch.from_numpy(a[plain])[:, None] for a in (first, denom, last))
        total = torch.zeros(len(p) * bins, dtype=torch.long)
        chunk = max(1, _CHUNK // size)  # rows at a time: the temporaries stay in cache
        for i in range(0, len(p), chunk):
            total += torch.bincount(_bin_index(p[i:i + chunk], f[i:i + chunk], d[i:i + chunk], top[i:i + chunk], bins, i),
                                    minlength=len(p) * bins)
        counts = total.view(len(p), bins).numpy()
        q = p.numpy()
        mean, std = q.mean(axis=1), q.std(axis=1)
        abs_max, zeros = np.abs(q).max(axis=1), np.mean(q == 0.0, axis=1)
        for j, r in enumerate(np.flatnonzero(plain)):
            lo, hi = float(low[r]), float(high[r])
            out[r] = {"low": lo, "high": hi, "counts": counts[j].astype("<u4").tobytes(), "n": size, "nonfinite": 0,
                      "stats": {"mean": float(mean[j]), "std": float(std[j]), "min": lo, "max": hi,
                                "abs_max": float(abs_max[j]), "zero_fraction": float(zeros[j])}, "flag": None}
    for r in np.flatnonzero(~plain):
        out[r] = summarize(x[r], bins)
    return out


_CHUNK = 1 << 15


def _bin_index(p: Any, f: Any, d: Any, top: Any, bins: int, start: int) -> Any:
    """The flat bin of every value of rows ``p`` (row r's bins at ``(start + r) * bins``), by
    ``np.histogram``'s equal-bin arithmetic: ``((x - first) / denom) * bins`` truncated, the top
    value in the last bin, then its corrections within an ulp of an edge (edges ``k * step + first``,
    the top one ``last``, as np.linspace computes them). In float64, where the indices are exact."""
    import torch

    index = p.sub(f).div_(d).mul_(bins).trunc_().clamp_(max=bins - 1)  # values lie in [first, last]
    step = d / bins
    edge = index.mul(step).add_(f)  # a multiply, then an add: no fused multiply-add, as numpy
    index.sub_((p < edge).to(index.dtype))
    edge = torch.where(index == bins - 1, top, (index + 1).mul_(step).add_(f))
    index.add_(((p >= edge) & (index != bins - 1)).to(index.dtype))
    index.add_((torch.arange(len(p), dtype=index.dtype) + start)[:, None] * bins)
    return index.long().view(-1)


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
