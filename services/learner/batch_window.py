"""The labels the batch challenger is fitted on: every label the learner kept over the last
``batch_window_s`` of event time (at most ``batch_window_labels``), held compactly. Pure.

The retrain window (``Trainer.recent``, 5,000 labels with their feature dicts and live
scores) is a day or two of labels at the sampling rate: enough to judge a challenger, too
few to grow trees on. On the Handbook-style file (``docs/evaluate.md``) the trees fitted on
the last 28 days ranked fraud far better than on the last few. Each label here is its event
time, truth, weight and its values in one ``array('d')`` in the window's column order:
448 bytes with 33 features (tracemalloc), against 1.6 KB for the feature dict alone; the
default cap of 200,000 labels is ~90 MB.

Labels arrive out of event-time order (the delay varies); the window drops from its front
in arrival order, so it may hold a few labels a little older than the span until then: the
fit takes only those within it. A feature set with other names (a new version) starts the
window afresh. After a restart the window refills as labels arrive (it is not persisted).

>>> w = BatchWindow(span_s=100.0, max_labels=3)
>>> for t in (0.0, 50.0, 120.0, 130.0):
...     w.add({"a": t, "b": 1.0}, t == 50.0, t, 1.0)
>>> len(w), w.names
(3, ('a', 'b'))
>>> X, y, weights, ts = w.arrays(before=130.0)
>>> X.tolist(), y.tolist()    # t=0 left (the cap of 3); t=130 is not before 130
([[50.0, 1.0], [120.0, 1.0]], [True, False])
"""

from __future__ import annotations

from array import array
from collections import deque

import numpy as np


class BatchWindow:
    def __init__(self, span_s: float, max_labels: int):
        self.span_s, self.max_labels = span_s, max_labels
        self.names: tuple[str, ...] = ()
        self._names: frozenset[str] = frozenset()
        self._rows: deque[tuple[float, array, bool, float]] = deque()
        self.newest = -np.inf

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, x: dict[str, float], is_fraud: bool, ts: float, weight: float) -> None:
        if x.keys() != self._names:
            self.names, self._names = tuple(sorted(x)), frozenset(x)
            self._rows.clear()
        self._rows.append((ts, array("d", [x[name] for name in self.names]), bool(is_fraud), weight))
        self.newest = max(self.newest, ts)
        cutoff = self.newest - self.span_s
        while self._rows and (len(self._rows) > self.max_labels or self._rows[0][0] < cutoff):
            self._rows.popleft()

    def arrays(self, before: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, weights, ts) of the labels within the span whose event time is before ``before``."""
        cutoff = self.newest - self.span_s
        rows = [r for r in self._rows if cutoff <= r[0] < before]
        X = np.array([r[1] for r in rows], dtype=float).reshape(len(rows), len(self.names))
        return (X, np.array([r[2] for r in rows], dtype=bool), np.array([r[3] for r in rows], dtype=float),
                np.array([r[0] for r in rows], dtype=float))
