"""A random forest as a checkpoint: per-pixel trees on the same normalised inputs as the networks.

`claire train --labels` fits a scikit-learn random forest on the physical values of the training pixels
(core.training.baseline). `ForestNet.from_sklearn` stores its trees as plain tensors (thresholds moved
into the engine's normalised input space, so the engine, the picker and the card handle it like any
network; nothing is pickled) and `forward` gives the forest's class probabilities, as log-probabilities
in `logits`, for every pixel of a tile. The trees are walked by scikit-learn's compiled code (rebuilt
from the tensors; several threads, no GIL), or, where that cannot be rebuilt, by a vectorised torch walk
that gives the same leaves.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

#: Pixels walked through the trees at once (bounds the per-thread buffers: ~40 MB for 8 classes).
CHUNK_PX = 1 << 20
#: Probability floor before the log (the engine's softmax of the logits gives the forest's probabilities back).
FLOOR = 1e-6
#: Normalised units a threshold is moved towards the side scikit-learn sends a pixel lying on it: far above the
#: rounding of the engine's normalisation (~1e-7), far below the spacing of integer-coded reflectances (~1e-3).
TIE = 1e-5
#: Largest forest a card may describe (card schema): trees, and nodes over all trees.
MAX_TREES = 5000
MAX_NODES = 50_000_000


class ForestNet(nn.Module):
    """A random forest over the concatenated optical and SAR channels of each pixel; no spatial context.

    Buffers: `feature` [N] (-1 at leaves), `threshold` [N] (normalised units; go left when x <= it),
    `kids` [N, 2] (-1 at leaves), `offsets` [T + 1] (the first node of each tree), `leaf` [N] (each node's leaf
    number, -1 for a split) and the leaves' non-zero class fractions, row by row: `entry_ptr` [L + 1] (where each
    leaf's entries start), `entry_class` [E] and `entry_frac` [E]. A fully grown tree's leaves are mostly pure (one
    entry), so a legend of K classes costs about one entry per leaf instead of K. Forests stored before (no
    `leaves` in their config) hold a dense `value` [N, K], a row for every node."""

    uses_cloud = False
    #: runs as it is: no compiled or AOT runtime (core.runtime.compiled.prepare)
    eager_only = True
    releases_gil = True

    def __init__(self, optical_channels: int, sar_channels: int, num_classes: int, trees: int, nodes: int,
                 leaves: Optional[int] = None, entries: Optional[int] = None) -> None:
        super().__init__()
        self.optical_channels, self.sar_channels, self.num_classes = optical_channels, sar_channels, num_classes
        self.register_buffer("feature", torch.full((nodes,), -1, dtype=torch.int32))
        self.register_buffer("threshold", torch.zeros(nodes, dtype=torch.float64))
        self.register_buffer("kids", torch.full((nodes, 2), -1, dtype=torch.int32))
        if leaves is None:  # the dense layout of forests stored before (a 21-class forest took 0.66 GB)
            self.register_buffer("value", torch.zeros(nodes, num_classes, dtype=torch.float32))
        else:
            self.register_buffer("leaf", torch.full((nodes,), -1, dtype=torch.int32))
            self.register_buffer("entry_ptr", torch.zeros(leaves + 1, dtype=torch.int64))
            self.register_buffer("entry_class", torch.zeros(int(entries or 0), dtype=torch.int32))
            self.register_buffer("entry_frac", torch.zeros(int(entries or 0), dtype=torch.float32))
        self.register_buffer("offsets", torch.zeros(trees + 1, dtype=torch.int64))
        self._walkers: Optional[List] = None
        self._walkers_key: Optional[tuple] = None
        self._host: Optional[Dict[str, np.ndarray]] = None
        self._host_key: Optional[tuple] = None
        self._host_gen = 0  # bumped when the host arrays are rebuilt (the walkers follow)
        self._lock = threading.Lock()
        #: [B, H, W] bool: the only pixels proba_map is asked for (the held-out pixels of scoring windows); the
        #: others get uniform probabilities. None: every pixel (the engine's maps).
        self.pixel_mask: Optional[np.ndarray] = None

    @classmethod
    def from_sklearn(cls, rf, num_classes: int, optical_channels: int, sar_channels: int,
                     mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> "ForestNet":
        """The fitted RandomForestClassifier `rf` (features: optical then SAR channels in physical units;
        classes: indices 0..num_classes-1) with its thresholds moved to (x - mean) / std per feature."""
        n_feat = optical_channels + sar_channels
        if int(rf.n_features_in_) != n_feat:
            raise ValueError(f"the forest was fitted on {rf.n_features_in_} features, not {n_feat}")
        mean_a = np.zeros(n_feat) if mean is None else np.asarray(mean, np.float64)
        std_a = np.ones(n_feat) if std is None else np.asarray(std, np.float64)
        cols = np.asarray(rf.classes_, np.int64)
        if cols.min() < 0 or cols.max() >= num_classes:
            raise ValueError(f"the forest's classes {cols.tolist()} are not indices below {num_classes}")
        trees = [e.tree_ for e in rf.estimators_]
        sizes = [t.node_count for t in trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        feature = np.full(offsets[-1], -1, np.int32)
        threshold = np.zeros(offsets[-1], np.float64)
        children = np.full((offsets[-1], 2), -1, np.int32)
        leaf_row = np.full(offsets[-1], -1, np.int32)
        per_leaf, classes, fracs = [], [], []
        row = 0
        for t, o0 in zip(trees, offsets[:-1]):
            n = t.node_count
            split = t.children_left >= 0
            f = t.feature.astype(np.int64)
            fi = np.maximum(f, 0)
            feature[o0:o0 + n] = np.where(split, f, -1)
            # a pixel on the threshold goes one way whatever the rounding of the normalisation: where scikit-learn
            # sends the float32 nearest the threshold
            tie_left = t.threshold.astype(np.float32).astype(np.float64) <= t.threshold
            moved = (t.threshold - mean_a[fi]) / std_a[fi] + np.where(tie_left, TIE, -TIE)
            threshold[o0:o0 + n] = np.where(split, moved, 0)
            children[o0:o0 + n, 0] = t.children_left
            children[o0:o0 + n, 1] = t.children_right
            leaves = np.flatnonzero(~split)
            v = np.zeros((leaves.size, num_classes), np.float32)
            v[:, cols] = t.value[leaves, 0, :] / np.maximum(t.value[leaves, 0, :].sum(axis=1, keepdims=True), 1e-12)
            r, c = np.nonzero(v)
            per_leaf.append(np.bincount(r, minlength=leaves.size))
            classes.append(c.astype(np.int32))
            fracs.append(v[r, c])
            leaf_row[o0 + leaves] = np.arange(row, row + leaves.size, dtype=np.int32)
            row += leaves.size
        ptr = np.concatenate([[0], np.cumsum(np.concatenate(per_leaf))]).astype(np.int64)
        net = cls(optical_channels, sar_channels, num_classes, len(trees), int(offsets[-1]), row, int(ptr[-1]))
        with torch.no_grad():
            net.feature.copy_(torch.from_numpy(feature))
            net.threshold.copy_(torch.from_numpy(threshold))
            net.kids.copy_(torch.from_numpy(children))
            net.leaf.copy_(torch.from_numpy(leaf_row))
            net.entry_ptr.copy_(torch.from_numpy(ptr))
            net.entry_class.copy_(torch.from_numpy(np.concatenate(classes)))
            net.entry_frac.copy_(torch.from_numpy(np.concatenate(fracs)))
            net.offsets.copy_(torch.from_numpy(offsets))
        return net

    def problem(self) -> str:
        """What is wrong with the trees stored in the buffers ("" when they can be walked): a tree's nodes must lie
        in order (offsets from 0 to the node count), a split test a known channel with a finite threshold and send
        to two later nodes of its own tree (so every walk ends: scikit-learn numbers a node's children after it), a
        leaf point to a stored row of class fractions of known classes. Checked before any walk: the compiled walk
        does not check bounds (a checkpoint altered by hand crashed QGIS or never ended)."""
        h = {n: getattr(self, n).detach().cpu().numpy() for n, _ in self.named_buffers()}
        offsets, feature = h["offsets"].astype(np.int64), h["feature"].astype(np.int64)
        kids = h["kids"].astype(np.int64)
        n = feature.size
        if offsets.size < 2 or offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) <= 0).any():
            return "the trees' node offsets do not run from 0 to the node count in order"
        split = feature >= 0
        if (feature[split] >= self.optical_channels + self.sar_channels).any() or (feature[~split] != -1).any():
            return "a split tests a channel the forest does not have"
        if not np.isfinite(h["threshold"][split]).all():
            return "a split's threshold is not a finite number"
        size = np.repeat(np.diff(offsets), np.diff(offsets))
        local = np.arange(n) - np.repeat(offsets[:-1], np.diff(offsets))
        if (kids[~split] != -1).any():
            return "a leaf has children"
        ks = kids[split]
        if ((ks <= local[split, None]) | (ks >= size[split, None])).any():
            return "a split's children lie outside its tree or before it"
        if "value" in h:
            return "" if np.isfinite(h["value"]).all() else "a leaf's class fractions are not finite numbers"
        leaf, ptr = h["leaf"].astype(np.int64), h["entry_ptr"].astype(np.int64)
        rows = ptr.size - 1
        if (leaf[split] != -1).any() or (leaf[~split] < 0).any() or (leaf[~split] >= rows).any():
            return "a leaf points to no stored row of class fractions"
        if ptr[0] != 0 or ptr[-1] != h["entry_class"].size or (np.diff(ptr) < 0).any():
            return "the leaves' rows of class fractions are not in order"
        cls = h["entry_class"].astype(np.int64)
        if (cls < 0).any() or (cls >= self.num_classes).any():
            return "a leaf names a class the forest does not have"
        frac = h["entry_frac"]
        if not np.isfinite(frac).all() or (frac < 0).any():
            return "a leaf's class fractions are not finite non-negative numbers"
        return ""

    def work_bytes_per_pixel(self) -> float:
        """Bytes per pixel of the walk's numpy buffers (inputs, and per thread leaves and class sums)."""
        threads = max(1, torch.get_num_threads())
        return 4.0 * 2 * (self.optical_channels + self.sar_channels) + threads * (8 + 4 * 2 * self.num_classes)

    @property
    def trees(self) -> int:
        return int(self.offsets.numel() - 1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None,
                return_features: bool = False) -> Dict[str, Optional[torch.Tensor]]:
        prob = self.proba_map(optical, sar)
        out: Dict[str, Optional[torch.Tensor]] = {"logits": torch.log(prob.clamp_min(FLOOR)).to(optical.device)}
        if return_gates:
            out["gates"] = []
        if return_features:
            out["features"], out["bottleneck"] = None, None
        return out

    def proba_map(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """[B,K,H,W] class probabilities (CPU, float32) of every pixel of normalised inputs [B,C,H,W]."""
        b, _, h, w = optical.shape
        x = torch.cat([optical, sar], dim=1).float().permute(0, 2, 3, 1).reshape(-1, self.optical_channels
                                                                                 + self.sar_channels)
        mask = self.pixel_mask
        if mask is not None and mask.shape == (b, h, w):  # a pixel's probabilities depend on that pixel alone
            keep = np.flatnonzero(mask.reshape(-1))
            prob = torch.full((b * h * w, self.num_classes), 1.0 / self.num_classes)
            prob[torch.from_numpy(keep)] = torch.from_numpy(self.predict_proba(x[keep].detach().cpu().numpy()))
        else:
            prob = torch.from_numpy(self.predict_proba(x.detach().cpu().numpy()))
        return prob.reshape(b, h, w, self.num_classes).permute(0, 3, 1, 2).contiguous()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean class fractions of the trees' leaves for the rows of `x` [P, F] (normalised units)."""
        x = np.ascontiguousarray(np.nan_to_num(x, nan=0.0), dtype=np.float32)
        out = np.zeros((x.shape[0], self.num_classes), np.float32)
        walkers = self._tree_walkers()
        host = self._arrays()
        value = host.get("value")
        threads = max(1, min(torch.get_num_threads(), self.trees))
        for p0 in range(0, x.shape[0], CHUNK_PX):
            xc = x[p0:p0 + CHUNK_PX]
            parts = np.array_split(np.arange(self.trees), threads)

            def run(ts: np.ndarray, xc=xc) -> np.ndarray:
                acc = np.zeros((xc.shape[0], self.num_classes), np.float32)
                for t in ts:
                    node = self._leaves(walkers, host, int(t), xc)
                    if value is not None:
                        acc += value[node]
                    else:
                        _add_leaf_fractions(acc, host, node)
                return acc

            if threads == 1:
                acc = run(parts[0])
            else:
                with ThreadPoolExecutor(threads) as pool:
                    acc = sum(pool.map(run, parts))
            out[p0:p0 + CHUNK_PX] = acc / self.trees
        return out

    def _leaves(self, walkers, host: Dict[str, np.ndarray], t: int, x: np.ndarray) -> np.ndarray:
        """Global node index of the leaf each row of `x` reaches in tree `t`."""
        o0 = int(host["offsets"][t])
        if walkers is not None:
            return walkers[t].apply(x).astype(np.int64) + o0
        return self._walk_torch(host, t, x)

    @staticmethod
    def _walk_torch(host: Dict[str, np.ndarray], t: int, x: np.ndarray) -> np.ndarray:
        """The leaves of tree `t` for the rows of `x`, walked level by level in torch (the fallback)."""
        o0, o1 = int(host["offsets"][t]), int(host["offsets"][t + 1])
        feat = torch.from_numpy(host["feature"][o0:o1]).long()
        thr = torch.from_numpy(host["threshold"][o0:o1])
        kids = torch.from_numpy(host["kids"][o0:o1]).long()
        xt = torch.from_numpy(x)
        node = torch.zeros(x.shape[0], dtype=torch.long)
        active = torch.arange(x.shape[0]) if feat[0] >= 0 else torch.zeros(0, dtype=torch.long)
        while active.numel():
            f = feat[node[active]]
            go_right = xt[active, f.clamp_min(0)].double() > thr[node[active]]
            node[active] = kids[node[active], go_right.long()]
            active = active[feat[node[active]] >= 0]
        return node.numpy() + o0

    def _arrays(self) -> Dict[str, np.ndarray]:
        """The buffers as host (CPU) arrays, cached while they are unchanged (the engine may have moved the
        module to a GPU; the walk runs on the CPU)."""
        names = ("feature", "threshold", "kids", "offsets") + (
            ("leaf", "entry_ptr", "entry_class", "entry_frac") if hasattr(self, "leaf") else ("value",))
        key = tuple((getattr(self, n).data_ptr(), getattr(self, n)._version) for n in names)
        with self._lock:
            if self._host_key != key:
                self._host = {name: getattr(self, name).detach().cpu().numpy() for name in names}
                self._host_key = key
                self._host_gen += 1
            return self._host

    def _tree_walkers(self) -> Optional[List]:
        """scikit-learn Tree objects rebuilt from the buffers (cached), or None where they cannot be."""
        host = self._arrays()
        key = (self._host_gen,)
        with self._lock:
            if self._walkers_key != key:
                self._walkers = _sklearn_trees(host["feature"], host["threshold"], host["kids"], host["offsets"],
                                               self.optical_channels + self.sar_channels, self.num_classes)
                self._walkers_key = key
            return self._walkers


def _add_leaf_fractions(acc: np.ndarray, host: Dict[str, np.ndarray], node: np.ndarray) -> None:
    """acc[p] += the class fractions of the leaf `node[p]` (one tree: each pixel one leaf, each leaf's classes
    distinct, so every (pixel, class) pair is added once and plain fancy indexing adds right)."""
    ptr = host["entry_ptr"]
    rows = host["leaf"][node]
    start = ptr[rows]
    n = ptr[rows + 1] - start
    if n.size and int(n.min()) == 1 == int(n.max()):  # pure leaves: one class each
        acc[np.arange(rows.size), host["entry_class"][start]] += host["entry_frac"][start]
        return
    idx = np.arange(int(n.sum())) + np.repeat(start - (np.cumsum(n) - n), n)
    acc[np.repeat(np.arange(rows.size), n), host["entry_class"][idx]] += host["entry_frac"][idx]


def _sklearn_trees(feature: np.ndarray, threshold: np.ndarray, children: np.ndarray, offsets: np.ndarray,
                   n_features: int, n_classes: int) -> Optional[List]:
    """scikit-learn's compiled Tree per tree (only `apply` is used), or None when this scikit-learn's
    node layout cannot be filled (the torch walk is used then)."""
    try:
        from sklearn.tree._tree import NODE_DTYPE, Tree
    except ImportError:
        return None
    out = []
    try:
        for t in range(len(offsets) - 1):
            o0, o1 = int(offsets[t]), int(offsets[t + 1])
            n = o1 - o0
            nodes = np.zeros(n, dtype=NODE_DTYPE)
            leaf = feature[o0:o1] < 0
            nodes["left_child"] = children[o0:o1, 0]
            nodes["right_child"] = children[o0:o1, 1]
            nodes["feature"] = np.where(leaf, -2, feature[o0:o1])
            nodes["threshold"] = np.where(leaf, -2.0, threshold[o0:o1])
            nodes["n_node_samples"] = 1
            nodes["weighted_n_node_samples"] = 1.0
            tree = Tree(n_features, np.array([n_classes], dtype=np.intp), 1)
            tree.__setstate__({"max_depth": _depth(children[o0:o1]), "node_count": n, "nodes": nodes,
                               "values": np.zeros((n, 1, n_classes), np.float64)})
            out.append(tree)
    except (ValueError, TypeError, KeyError):
        return None
    return out


def _depth(children: np.ndarray) -> int:
    """Depth of a tree from its children table (root 0)."""
    level, depth = np.array([0]), 0
    while True:
        kids = children[level].ravel()
        level = kids[kids >= 0]
        if not level.size:
            return depth
        depth += 1


def forest_config(net: ForestNet) -> Dict[str, int]:
    """The card's `config` of a forest checkpoint (what `build_model("forest", ...)` needs)."""
    out = {"num_classes": net.num_classes, "optical_channels": net.optical_channels,
           "sar_channels": net.sar_channels, "trees": net.trees, "nodes": int(net.feature.numel())}
    if hasattr(net, "leaf"):
        out["leaves"], out["entries"] = int(net.entry_ptr.numel() - 1), int(net.entry_class.numel())
    return out
