"""Smooth 1-D time curves for the motion models (numpy, vectorised over frames)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def minjerk(u: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk blend 0 -> 1 on u in [0, 1] (zero velocity and acceleration at both ends)."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """0 before ``t0``, 1 after ``t1``, minimum-jerk in between."""
    if t1 <= t0:
        return (np.asarray(t) >= t0).astype(np.float64)
    return minjerk((np.asarray(t) - t0) / (t1 - t0))


def bump(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """0 outside [t0, t1], rising smoothly to 1 in the middle (sin^2)."""
    if t1 <= t0:
        return np.zeros_like(np.asarray(t, dtype=np.float64))
    u = np.clip((np.asarray(t) - t0) / (t1 - t0), 0.0, 1.0)
    return np.sin(np.pi * u) ** 2


def ease_keys(t: np.ndarray, times: Sequence[float], values: Sequence) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through keys (stops at every key: gesture-like motion).

    ``values`` may be scalars or equally shaped arrays; the result has shape ``t.shape + value.shape``.
    """
    t = np.asarray(t, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    if len(times) != len(vals):
        raise ValueError("times and values must have the same length")
    out = np.broadcast_to(vals[0], t.shape + vals.shape[1:]).copy()
    for k in range(1, len(times)):
        w = ramp(t, times[k - 1], times[k]).reshape(t.shape + (1,) * (vals.ndim - 1))
        out = out + w * (vals[k] - vals[k - 1])
    return out


def smooth_keys(t: np.ndarray, times: Sequence[float], values: Sequence) -> np.ndarray:
    """Shape-preserving cubic (PCHIP) through keys: flows through them; constant outside the key range."""
    times = np.asarray(times, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    tt = np.clip(np.asarray(t, dtype=np.float64), times[0], times[-1])
    return PchipInterpolator(times, vals, axis=0)(tt)


def hermite(t: np.ndarray, t0: float, t1: float, y0: float, y1: float, v0: float, v1: float) -> np.ndarray:
    """Cubic Hermite from (t0, y0, slope v0) to (t1, y1, slope v1), evaluated on t clipped to [t0, t1]."""
    h = t1 - t0
    u = np.clip((np.asarray(t) - t0) / h, 0.0, 1.0)
    h00 = 2 * u**3 - 3 * u**2 + 1
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    return h00 * y0 + h10 * h * v0 + h01 * y1 + h11 * h * v1
