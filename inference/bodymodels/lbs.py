"""Linear blend skinning when only a few bones rotate (the fit's fast path).

With local rotations given in each bone's rest frame, a bone whose rotation
is identity moves exactly like its parent: its skinning transform equals its
parent's. So when only ``posed`` bones rotate, every other bone can be merged
into its nearest posed ancestor (or into the static root). Skinning then
needs a handful of transforms instead of the whole skeleton (Anny: 20 instead
of 104), which makes a fit step several times cheaper and is exact.
"""

from __future__ import annotations

import numpy as np
import torch


class CollapsedSkeleton:
    def __init__(self, parents: np.ndarray, posed: list[int], weights: torch.Tensor) -> None:
        """``parents`` (J,), ``posed`` bone indices (any order), dense skin ``weights`` (V, J)."""
        parents = np.asarray(parents)
        slot_of = {b: i + 1 for i, b in enumerate(posed)}  # slot 0: static (root side)

        def owner(j: int) -> int:
            while j >= 0 and j not in slot_of:
                j = int(parents[j])
            return slot_of.get(j, 0)

        n = len(posed)
        onehot = torch.zeros(len(parents), n + 1)
        for j in range(len(parents)):
            onehot[j, owner(j)] = 1.0
        self.weights = weights @ onehot  # (V, N+1)
        self.posed = torch.tensor(posed)
        # Pointer jumping: after k rounds each slot holds the composition of up to 2^k
        # transforms along its chain, so depth d needs ceil(log2(d + 1)) batched rounds.
        anc = [0] + [owner(int(parents[b])) for b in posed]
        depth = max(self._depth(anc, i) for i in range(n + 1))
        self.rounds: list[torch.Tensor] = []
        a = torch.tensor(anc)
        for _ in range(max(1, int(np.ceil(np.log2(depth + 1))))):
            self.rounds.append(a)
            a = a[a]

    def to(self, device: str | torch.device) -> "CollapsedSkeleton":
        self.weights, self.posed = self.weights.to(device), self.posed.to(device)
        self.rounds = [a.to(device) for a in self.rounds]
        return self

    @staticmethod
    def _depth(anc: list[int], i: int) -> int:
        d = 0
        while i != 0:
            i, d = anc[i], d + 1
        return d

    def transforms(self, posed_rest_poses: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """(B, N+1, 3, 4) skinning transforms from the posed bones' rest poses (B, N, 4, 4)
        and their rotations (B, N, 3, 3)."""
        Rp, h = posed_rest_poses[..., :3, :3], posed_rest_poses[..., :3, 3]
        # Rotation about the bone's head, in its rest frame: x -> Rp D Rp^T (x - h) + h.
        L = Rp @ rotations @ Rp.transpose(-1, -2)
        l = h - (L @ h[..., None])[..., 0]
        b = rotations.shape[0]
        rot = torch.cat([torch.eye(3, dtype=L.dtype, device=L.device).expand(b, 1, 3, 3), L], 1)
        trans = torch.cat([L.new_zeros(b, 1, 3), l], 1)
        for anc in self.rounds:
            ra, ta = rot[:, anc], trans[:, anc]
            trans = (ra @ trans[..., None])[..., 0] + ta
            rot = ra @ rot
        return torch.cat([rot, trans[..., None]], dim=-1)

    def skin(
        self, vertices: torch.Tensor, transforms: torch.Tensor, vertex_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Posed (B, V', 3) from rest ``vertices`` (B, V', 3), the rows ``vertex_ids`` of the weights."""
        w = self.weights if vertex_ids is None else self.weights[vertex_ids]
        b, s = transforms.shape[:2]
        blended = torch.einsum("vs,bsk->bvk", w, transforms.reshape(b, s, 12)).reshape(b, -1, 3, 4)
        return torch.einsum("bvij,bvj->bvi", blended[..., :3], vertices) + blended[..., 3]
