"""Anny (NAVER, Apache-2.0 code, CC0 MakeHuman assets) as the default body model.

Anny's first build takes about a minute and writes ~790 MB of intermediate
cache. We build it once with its ``anny-blender`` rig (each bone's Y axis runs
head->tail and local-bone-world pose inputs equal Blender's ``matrix_basis``),
keep only the float32 model data (~26 MB safetensors) in our cache folder and
delete Anny's intermediates. Later processes load that file in milliseconds.

Cache folder: ``cache_dir`` argument, else ``$HUMAN_RECON_CACHE_DIR``, else
``~/.cache/human_recon``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .. import keypoints as kpl
from ..errors import ReconError
from .base import RestState, kept
from .joints import LIMITS

log = logging.getLogger(__name__)

RIG = "anny-blender"
# Anny's phenotype 'age' anchors are newborn/baby/child/young/old at -1/3, 0, 1/3, 2/3, 1:
# 0.7 is a young adult, the prior for photos of adults.
ADULT_AGE = 0.7
CACHED = 8  # vertex and bone subsets, and fixed shapes' rest states, kept (a clip of four people: 4 x 2 rest states)
# Where MediaPipe puts each keypoint (body-model order) against where Anny's lies, as fractions of
# the detection's torso and left-to-right width vectors (detect.body_axes_2d): its hips sit 3% of
# the torso higher and both hips and shoulders 5% of the width narrower, its ears 14% narrower.
# Measured by training/calibrate_keypoints.py on 88 well-detected rendered validation bodies. The
# network read these offsets as a bigger, further body: subtracting them took the rendered-body
# benchmark's size error from 1.13x to 1.05x (README, "The same bodies through the real detector").
ANNY_DETECTOR_OFFSETS = np.array([
    [+0.0008, +0.0000],
    [-0.0014, +0.0392],
    [-0.0014, -0.0392],
    [-0.0122, +0.1416],
    [-0.0122, -0.1416],
    [+0.0101, +0.0567],
    [+0.0101, -0.0567],
    [-0.0039, -0.0018],
    [-0.0039, +0.0018],
    [+0.0032, +0.0024],
    [+0.0032, -0.0024],
    [+0.0314, +0.0452],
    [+0.0314, -0.0452],
    [+0.0060, +0.0364],
    [+0.0060, -0.0364],
    [+0.0033, +0.0093],
    [+0.0033, -0.0093],
    [+0.0297, -0.0233],
    [+0.0297, +0.0233],
    [-0.0001, +0.0284],
    [-0.0001, -0.0284],
])

KEYPOINT_SUPPORT = 64


def default_cache_dir() -> Path:
    env = os.environ.get("HUMAN_RECON_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "human_recon"


def _cache_file(cache_dir: Path) -> Path:
    import anny

    return cache_dir / f"anny-{anny.__version__}-{RIG}-f32.safetensors"


def _build_model_data(target: Path) -> None:
    """Build Anny once and save the compact float32 model data to ``target``."""
    import anny
    from anny.paths import get_anny_cache_path, set_anny_cache_path

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="anny-build-", dir=target.parent))
    previous = get_anny_cache_path()
    log.info("Building the Anny body model once (about a minute); cached in %s", target.parent)
    try:
        set_anny_cache_path(scratch)
        model = anny.Anny(rig=RIG, pose_parameterization="local-bone-world").to(torch.float32)
        tmp = scratch / "model.safetensors"
        model.to_model_data().save_safetensors(tmp)
        os.replace(tmp, target)  # atomic: a concurrent reader sees all or nothing
    finally:
        set_anny_cache_path(previous)
        shutil.rmtree(scratch, ignore_errors=True)


# The phenotypes anny interpolates between anchors, in the order its coefficient function takes them.
INTERPOLATED = ("age", "gender", "muscle", "weight", "height", "proportions", "cupsize", "firmness")


class PhenotypeCoefficients:
    """Anny's phenotype blend-shape coefficients from a shape (B, S), as
    ``Anny._get_phenotype_blendshape_coefficients`` gives them without local changes or facial
    actions, in about twenty batched operations instead of about a hundred and twenty: every element
    goes through the same arithmetic, so values and gradients are the same to the bit
    (tests/test_bodymodels.py). A photo's silhouette stage asks for them at every step (1.1 ms
    a step saved, forward and backward)."""

    def __init__(self, model) -> None:
        from anny.models.phenotype import PHENOTYPE_VARIATIONS

        anchors = [model.anchors[f] for f in INTERPOLATED]
        width = max(len(a) for a in anchors)
        # Each phenotype's anchors in a row, padded with +inf, which no clamped value reaches, so
        # searchsorted finds the same segment as on the row alone.
        self.anchors = anchors[0].new_full((len(INTERPOLATED), width), float("inf"))
        for i, a in enumerate(anchors):
            self.anchors[i, : len(a)] = a
        self.low = self.anchors[:, 0].clone()
        self.high = torch.stack([a[-1] for a in anchors])
        self.top = torch.tensor([len(a) - 1 for a in anchors], device=self.anchors.device)
        self.slots = torch.arange(width, device=self.anchors.device)
        labels = list(model.phenotype_labels)
        self.source = [labels.index(f) if f in labels else None for f in INTERPOLATED]
        # Race is no shape parameter here: each race's weight is 0.5 / 1.5, as anny computes it.
        race = self.anchors.new_full((1, 3), 0.5)
        self.race = race / race.sum(1, keepdim=True)
        keys = list(PHENOTYPE_VARIATIONS)
        assert keys[0] == "race" and set(keys[1:]) == set(INTERPOLATED)
        columns = [INTERPOLATED.index(k) * width + i for k in keys[1:] for i in range(len(PHENOTYPE_VARIATIONS[k]))]
        self.columns = torch.tensor(columns, device=self.anchors.device)
        self.mask = model.stacked_phenotype_blend_shapes_mask
        self.projection = model.phenotype_blendshape_projection

    @classmethod
    def of(cls, model) -> "PhenotypeCoefficients | None":
        """The fast path for ``model``, or None where it does not apply (anny's own function then)."""
        plain = not model.local_change_labels and not model.facial_action_labels and not model.extrapolate_phenotypes
        interpolated = set(model.phenotype_labels) <= set(INTERPOLATED)  # no race weights among the parameters
        if not plain or not interpolated or model.phenotype_blendshape_projection is None:
            return None
        return cls(model)

    def __call__(self, shape: torch.Tensor) -> torch.Tensor:
        b = shape.shape[0]
        half = shape.new_full((b,), 0.5)
        v = torch.stack([half if s is None else shape[:, s] for s in self.source], 1)  # (B, F)
        # anny's linear_interpolation_coefficients, for every phenotype at once.
        v = torch.where(v < self.low, self.low, v)
        v = torch.where(v > self.high, self.high, v)
        anchors = self.anchors.expand(b, -1, -1).contiguous()
        idx = torch.searchsorted(anchors, v.contiguous()[..., None], side="left")[..., 0]
        idx = torch.minimum(idx.clamp_min(1), self.top)
        lower = anchors.gather(2, (idx - 1)[..., None])[..., 0]
        upper = anchors.gather(2, idx[..., None])[..., 0]
        alpha = (v - lower) / (upper - lower)
        zero = alpha.new_zeros(())
        w = torch.where(self.slots == (idx - 1)[..., None], (1.0 - alpha)[..., None],
                        torch.where(self.slots == idx[..., None], alpha[..., None], zero))  # fmt: skip
        phens = torch.cat([self.race.expand(b, -1), w.reshape(b, -1)[:, self.columns]], 1)
        mask = self.mask.unsqueeze(0)
        return torch.prod(phens.unsqueeze(1) * mask + (1 - mask), dim=-1) @ self.projection


class AnnyBody:
    """Anny with the Blender rig, float32, plus fast vertex-subset forward passes."""

    name = "anny"

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        import anny
        from anny.models.model_data import ModelData

        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        path = _cache_file(cache)
        if not path.exists():
            try:
                _build_model_data(path)
            except OSError as exc:
                raise ReconError(
                    "cache_not_writable",
                    f"Cannot write the body-model cache in {cache} ({exc.strerror}); "
                    "set HUMAN_RECON_CACHE_DIR to a writable folder.",
                ) from None
        try:
            data = ModelData.load_safetensors(path)
        except Exception:
            # A damaged cache file is rebuilt rather than failing every run after.
            path.unlink(missing_ok=True)
            _build_model_data(path)
            data = ModelData.load_safetensors(path)
        m = anny.Anny.from_model_data(
            data,
            pose_parameterization="local-bone-world",
            bone_orientation="blender",
            root_identity_orientation=False,
        ).to(torch.float32)
        m.set_skinning_method("lbs")
        m.eval()
        self.model = m
        self._coefficients = PhenotypeCoefficients.of(m)
        # Gathered vertex subsets and rest states of fixed shapes, by key; each entry keeps the
        # tensors its key was made from alive, so that no other tensor takes their memory (the key).
        self._subsets: OrderedDict = OrderedDict()
        self._rests: OrderedDict = OrderedDict()
        self.cache_file = path
        self.bone_names: list[str] = list(m.bone_labels)
        self.bone_parents = np.asarray(m.bone_parents, dtype=np.int32)
        self.faces = m.get_triangular_faces().cpu().numpy().astype(np.int32)
        self.num_vertices = int(m.template_vertices.shape[0])
        self.shape_labels: list[str] = list(m.phenotype_labels)
        self.shape_bounds = (0.0, 1.0)
        self.shape_fixed = torch.tensor([lab == "age" for lab in self.shape_labels])
        self.model_axes = np.eye(3)  # left +X, back +Y, up +Z
        self.up_axis = "Z"
        self.scalable = True
        self.detector_offsets = ANNY_DETECTOR_OFFSETS
        self.pose_limits = LIMITS

        kr = anny.KeypointsRegressor.coco(m)
        order = [kr.labels.index(n) for n in kpl.NAMES]  # the bundled regressor's COCO-17 and feet
        self.keypoint_names = list(kpl.NAMES)
        w = kr.regression_weights[order].to(torch.float32)  # (K, V), thousands of tiny weights
        # Keep each keypoint's KEYPOINT_SUPPORT largest weights (>98% of the mass): the fit
        # then only skins ~1k vertices for keypoints, and every stage uses this same regressor.
        top = w.topk(KEYPOINT_SUPPORT, dim=1)
        sparse = torch.zeros_like(w).scatter_(1, top.indices, top.values)
        self._kp_weights = sparse / sparse.sum(1, keepdim=True)
        self.keypoint_vertex_ids = torch.nonzero(self._kp_weights.sum(0) > 0).squeeze(1)
        self._skin_idx = m.vertex_bone_indices.long()
        self._skin_w = m.vertex_bone_weights.to(torch.float32)
        # Dense (V, J) weights: blending transforms is then one matmul, forward and backward.
        self.skin_matrix = torch.zeros(self.num_vertices, len(self.bone_names)).scatter_add_(
            1, self._skin_idx, self._skin_w
        )

    def to(self, device: str | torch.device) -> "AnnyBody":
        """Move the model's tensors (for batched work on a GPU; the pipeline runs on the CPU)."""
        self.model.to(device)
        self._coefficients = PhenotypeCoefficients.of(self.model)
        for name in ("skin_matrix", "_kp_weights", "keypoint_vertex_ids", "_skin_idx", "_skin_w", "shape_fixed"):
            setattr(self, name, getattr(self, name).to(device))
        self._subsets.clear()
        self._rests.clear()
        return self

    # -- shape ---------------------------------------------------------------------------

    def default_shape(self, batch: int = 1) -> torch.Tensor:
        s = torch.full((batch, len(self.shape_labels)), 0.5)
        s[:, self.shape_labels.index("age")] = ADULT_AGE
        return s

    def rest(
        self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None, bone_ids: torch.Tensor | None = None
    ) -> RestState:
        """Rest mesh and skeleton for ``shape``: all vertices and bones, or the subsets asked for.
        A shape that is not being fitted (no gradient) gets the same rest state each time it is
        asked for again: a clip's warm fits and hand searches ask for each person's several
        times a frame (17 ms a frame for two people on the kit's clips)."""
        if shape.requires_grad:
            return self._rest(shape, vertex_ids, bone_ids)
        key = (shape.detach().cpu().numpy().tobytes(), tuple(shape.shape), str(shape.dtype), _key(vertex_ids),
               _key(bone_ids))  # fmt: skip
        make = lambda: (self._rest(shape, vertex_ids, bone_ids), vertex_ids, bone_ids)  # noqa: E731
        return kept(self._rests, CACHED, key, make)[0]

    def _rest(
        self, shape: torch.Tensor, vertex_ids: torch.Tensor | None, bone_ids: torch.Tensor | None
    ) -> RestState:
        from anny.skinning.skinning import apply_linear_blendshape
        from anny.utils import kinematics

        m = self.model
        b = shape.shape[0]
        if self._coefficients is not None:
            coeffs = self._coefficients(shape)
        else:
            coeffs = m._get_phenotype_blendshape_coefficients(
                shape,
                shape.new_zeros((b, len(m.local_change_labels))),
                shape.new_zeros((b, len(m.facial_action_labels))),
            )
        if vertex_ids is None:
            template, blendshapes = m.template_vertices, m.blendshapes
        else:
            template, blendshapes = self._subset_blendshapes(vertex_ids)
        bh, bhb = m.template_bone_heads, m.bone_heads_blendshapes
        bt, btb = m.template_bone_tails, m.bone_tails_blendshapes
        rolls = m.bone_rolls_rotmat
        if bone_ids is not None:  # gathered once per subset, as the vertices are
            bh, bhb, bt, btb, rolls = kept(self._subsets, CACHED, ("bones",) + _key(bone_ids), lambda: (
                bh[bone_ids], bhb[:, bone_ids], bt[bone_ids], btb[:, bone_ids], rolls[..., bone_ids, :, :],
                bone_ids))[:5]  # fmt: skip
        heads = apply_linear_blendshape(bh, bhb, coeffs)
        tails = apply_linear_blendshape(bt, btb, coeffs)
        poses = kinematics.get_bone_poses(
            heads, tails, rolls, y_axis=m.y_axis, degenerate_rotation=m.degenerate_rotation
        )
        return RestState(
            vertices=apply_linear_blendshape(template, blendshapes, coeffs),
            bone_poses=poses,
            bone_heads=heads,
            bone_tails=tails,
        )

    def _subset_blendshapes(self, vertex_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Blending only the fit's vertex subset saves most of a step; gathering the subset
        # costs as much again, so the gathered subsets are kept (a clip's fits and hand searches
        # take turns with two).
        m = self.model
        hit = kept(self._subsets, CACHED, _key(vertex_ids), lambda: (
            m.template_vertices[vertex_ids].contiguous(), m.blendshapes[:, vertex_ids].contiguous(), vertex_ids))
        return hit[0], hit[1]

    # -- pose ----------------------------------------------------------------------------

    def pose(
        self, rest: RestState, rotations: torch.Tensor, vertex_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear blend skinning of ``rest.vertices`` (all, or the subset ``vertex_ids``)."""
        b, j = rotations.shape[:2]
        delta = torch.eye(4, dtype=rotations.dtype).repeat(b, j, 1, 1)
        delta[:, :, :3, :3] = rotations
        transforms, bone_poses = self.model.get_bone_transforms(delta, rest.bone_poses)
        w = self.skin_matrix if vertex_ids is None else self.skin_matrix[vertex_ids]
        # Blend the bones' 3x4 matrices per vertex, then apply them.
        blended = torch.einsum("vj,bjk->bvk", w, transforms[:, :, :3, :].reshape(b, j, 12))
        blended = blended.reshape(b, -1, 3, 4)
        v = rest.vertices
        posed = torch.einsum("bvij,bvj->bvi", blended[..., :3], v) + blended[..., 3]
        return posed, bone_poses

    def keypoints(self, posed_vertices: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        w = self._kp_weights
        if vertex_ids is not None:  # the columns of a subset, gathered once (a fit asks at every step)
            w = kept(self._subsets, CACHED, ("keypoints",) + _key(vertex_ids),
                     lambda: (w[:, vertex_ids].contiguous(), vertex_ids))[0]  # fmt: skip
        return torch.einsum("kv,bvd->bkd", w, posed_vertices)

    def skin(self) -> tuple[np.ndarray, np.ndarray]:
        return self._skin_idx.numpy().astype(np.int32), self._skin_w.numpy().astype(np.float32)


def _key(ids: torch.Tensor | None) -> tuple[int, int] | None:
    """A cache key for an index tensor: its memory and length (the cache keeps it alive, so no
    other tensor takes that memory while the entry is kept)."""
    return None if ids is None else (ids.data_ptr(), ids.numel())
