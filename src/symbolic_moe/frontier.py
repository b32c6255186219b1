"""The cost/quality frontier (issue 18; RouterBench, Hu et al. 2024): pure arithmetic over
(dollars per question, accuracy) points.

- `hull`: the non-decreasing upper convex hull of a set of points. Mixing two settings at random
  per question reaches every point of the segment between them, so the hull is what a router
  (or, over the single models' points, the *zero router*) can reach at each price.
- `quality_at`: the hull's accuracy at a cost (0 below its cheapest point, flat after its dearest).
- `aiq`: average quality, the area under the hull over a cost range divided by its width.
- `first_match`: the cheapest point reaching a target accuracy (e.g. the best single model's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]  # (cost, accuracy)


def hull(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing upper convex hull, cheapest first: from the cheapest point (the most
    accurate of equally cheap ones) up to the most accurate one."""
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    out: list[Point] = []
    for c, a in ordered:
        if out and a <= out[-1][1]:
            continue  # dearer and no better
        while len(out) >= 2:
            (c0, a0), (c1, a1) = out[-2], out[-1]
            if (a1 - a0) * (c - c0) <= (a - a0) * (c1 - c0):
                out.pop()  # under the chord from its neighbour to the new point
            else:
                break
        out.append((c, a))
    return out


def quality_at(frontier: Sequence[Point], cost: float | np.ndarray) -> np.ndarray:
    """Accuracy of the hull `frontier` at `cost`: interpolated, 0 below its cheapest point."""
    cs = np.array([p[0] for p in frontier])
    accs = np.array([p[1] for p in frontier])
    cost = np.asarray(cost, dtype=float)
    return np.where(cost < cs[0], 0.0, np.interp(cost, cs, accs))


def aiq(points: Sequence[Point], low: float, high: float, steps: int = 4001) -> float:
    """RouterBench's AIQ: the mean of the hull's accuracy over [low, high] (linear cost)."""
    if not high > low:
        raise ValueError(f"cost range [{low}, {high}] is empty")
    grid = np.linspace(low, high, steps)
    return float(np.trapezoid(quality_at(hull(points), grid), grid) / (high - low))


def first_match(points: Sequence[Point], target: float) -> Point | None:
    """The cheapest point with accuracy >= target (None when none reaches it)."""
    reaching = [p for p in points if p[1] >= target - 1e-12]
    return min(reaching, key=lambda p: (p[0], -p[1])) if reaching else None
