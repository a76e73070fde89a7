"""Circles: communities of person-to-person ties (docs/influence.md#circles).

Ties are undirected and weighted by the number of interactions: credited orders (sharer -
buyer), clicks (clicker - sharer of the clicked share), re-shares (re-sharer - parent sharer)
and the effective agent upline (weight 1). Communities by modularity-aware label propagation
(LPAm, Barber & Clark 2009; :func:`sharegraph.core.kernels.label_propagation`) at every
scale, so hubs cannot pull everyone into one label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sharegraph.core.kernels import label_propagation

CIRCLE_SEED = 42
"""Seed of the circle detection (random update subsets and tie-breaks)."""


def circles(src: np.ndarray, dst: np.ndarray, n: int,
            weight: np.ndarray | None = None) -> np.ndarray:
    """Community label per node of the undirected weighted graph (src, dst) over 0..n-1.

    Modularity-aware, semi-synchronous label propagation
    (:func:`sharegraph.core.kernels.label_propagation`, seed ``CIRCLE_SEED``) at every scale.
    """
    return label_propagation(src, dst, n, weight=weight, seed=CIRCLE_SEED)


@dataclass(frozen=True)
class Circles:
    """Each person's circle, over people ``0..n-1`` numbered in person_id order."""

    label: np.ndarray
    """Circle label per person, -1 for a person with no tie."""
    named_by: np.ndarray
    """Index of the circle's smallest person (its name), -1 for a person with no tie."""
    size: np.ndarray
    """People in the person's circle (0 with no tie)."""


def person_circles(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> Circles:
    """Circles of the people ``0..n-1`` from their ties (src, dst, weight = interactions).

    Only people with a tie take part (ties are renumbered densely); a circle is named by its
    smallest member, which is its smallest person_id because indices follow person_id order.
    """
    node = np.zeros(n, dtype=bool)
    node[src] = True
    node[dst] = True
    loc = (np.cumsum(node) - 1).astype(np.int32)
    label = np.full(n, -1, dtype=np.int64)
    if node.any():
        label[node] = circles(loc[src], loc[dst], int(node.sum()), weight=weight)
    k = int(label.max()) + 1 if node.any() else 0
    circle_min = np.full(k, n, dtype=np.int64)
    np.minimum.at(circle_min, label[node], np.flatnonzero(node))
    named_by = np.full(n, -1, dtype=np.int64)
    named_by[node] = circle_min[label[node]]
    size = np.zeros(n, dtype=np.int64)
    size[node] = np.bincount(label[node], minlength=k)[label[node]]
    return Circles(label, named_by, size)
