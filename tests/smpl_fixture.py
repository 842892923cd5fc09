"""A synthetic SMPL-format model: the right keys and shapes, a human-like T-pose skeleton.

No SMPL data is used or committed: joints are placed by hand, each joint owns a
ring of vertices around it (so the joint regressor recovers the joint), and the
vertex ids SMPL tools use for the face, toes and heels are put where those are.
"""

from __future__ import annotations

import pickle

import numpy as np

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.09, -0.09, 0.0], [-0.09, -0.09, 0.0], [0.0, 0.11, -0.02], [0.1, -0.48, 0.0],
    [-0.1, -0.48, 0.0], [0.0, 0.24, -0.01], [0.1, -0.88, -0.03], [-0.1, -0.88, -0.03], [0.0, 0.3, 0.0],
    [0.11, -0.94, 0.1], [-0.11, -0.94, 0.1], [0.0, 0.5, -0.02], [0.07, 0.41, -0.01], [-0.07, 0.41, -0.01],
    [0.0, 0.62, 0.03], [0.17, 0.44, -0.02], [-0.17, 0.44, -0.02], [0.43, 0.42, -0.03], [-0.43, 0.42, -0.03],
    [0.68, 0.43, -0.03], [-0.68, 0.43, -0.03], [0.76, 0.42, -0.03], [-0.76, 0.42, -0.03],
])  # fmt: skip
SPECIAL = {332: (15, [0, 0.0, 0.11]), 2800: (15, [0.03, 0.03, 0.09]), 6260: (15, [-0.03, 0.03, 0.09]),
           583: (15, [0.07, 0.0, 0.0]), 4071: (15, [-0.07, 0.0, 0.0]), 3216: (10, [0.0, -0.03, 0.08]),
           6617: (11, [0.0, -0.03, 0.08]), 3387: (7, [0.0, -0.06, -0.06]), 6787: (8, [0.0, -0.06, -0.06])}  # fmt: skip


def make_smpl_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n_v, n_j = 6890, 24
    owner = np.arange(n_v) % n_j
    ang = rng.uniform(0, 2 * np.pi, n_v)
    radius = 0.04 + 0.02 * rng.random(n_v)
    ring = np.stack([np.cos(ang), np.sin(ang), np.sin(2 * ang) * 0.5], 1) * radius[:, None]
    ring -= np.stack([ring[owner == j].mean(0) for j in range(n_j)])[owner]  # rings centred on their joint
    v = JOINTS[owner] + ring
    for vid, (j, off) in SPECIAL.items():
        owner[vid] = j
        v[vid] = JOINTS[j] + np.array(off)
    weights = np.zeros((n_v, n_j))
    weights[np.arange(n_v), owner] = 0.8
    parents = np.array(PARENTS)
    weights[np.arange(n_v), np.where(parents[owner] >= 0, parents[owner], owner)] += 0.2
    J_reg = np.zeros((n_j, n_v))
    for j in range(n_j):
        ids = np.nonzero(owner == j)[0]
        ids = ids[[i not in SPECIAL for i in ids]]
        J_reg[j, ids] = 1.0 / len(ids)
    # Shape: smooth whole-body changes (height, girth, limb length, ...).
    shapedirs = np.zeros((n_v, 3, 10))
    shapedirs[:, 1, 0] = v[:, 1] * 0.06  # taller
    shapedirs[:, 0, 1] = v[:, 0] * 0.05  # wider
    shapedirs[:, 2, 2] = ring[:, 2] * 0.5  # deeper
    for k in range(3, 10):
        shapedirs[:, :, k] = rng.normal(0, 0.002, (n_v, 3))
    posedirs = rng.normal(0, 0.0005, (n_v, 3, 207))
    f = rng.integers(0, n_v, (13776, 3))
    kintree = np.array([[4294967295] + PARENTS[1:], list(range(n_j))], dtype=np.int64)
    return {
        "v_template": v, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": J_reg,
        "weights": weights, "kintree_table": kintree, "f": f.astype(np.uint32), "bs_type": "lrotmin",
    }  # fmt: skip


def write_smpl_pkl(path, seed: int = 0) -> None:
    """Pickled like the official files (a dict of arrays), but plain numpy."""
    with open(path, "wb") as fh:
        pickle.dump(make_smpl_arrays(seed), fh, protocol=2)


def write_smpl_npz(path, seed: int = 0) -> None:
    arrays = make_smpl_arrays(seed)
    arrays.pop("bs_type")
    np.savez(path, **arrays)
