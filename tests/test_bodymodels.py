"""The Anny body model wrapper: cache, skeleton, skinning fast path, keypoints."""

from __future__ import annotations

import numpy as np
import roma
import torch

from inference.bodymodels.anny import AnnyBody
from inference.bodymodels.joints import JointLimits
from inference.bodymodels.lbs import CollapsedSkeleton


def test_cache_is_reused(body, cache_dir):
    mtime = body.cache_file.stat().st_mtime_ns
    again = AnnyBody(cache_dir=cache_dir)
    assert again.cache_file == body.cache_file and body.cache_file.stat().st_mtime_ns == mtime
    assert body.cache_file.stat().st_size < 60_000_000  # only our compact float32 file is kept


def test_skeleton_and_mesh(body):
    assert body.num_vertices == 13718 and body.faces.shape == (27420, 3)
    assert body.faces.min() == 0 and body.faces.max() == body.num_vertices - 1
    parents = body.bone_parents
    assert parents[0] == -1 and all(0 <= p < i for i, p in enumerate(parents[1:], start=1))
    idx, w = body.skin()
    assert np.allclose(w.sum(1), 1.0, atol=1e-4) and idx.max() < len(body.bone_names)
    assert body.model.dtype == torch.float32


def test_collapsed_skinning_matches_full_skinning(body):
    lim = JointLimits(body.bone_names)
    sk = CollapsedSkeleton(body.bone_parents, lim.index.tolist(), body.skin_matrix)
    torch.manual_seed(0)
    sub = torch.randn(2, len(lim.index), 3) * 0.5
    shape = torch.rand(2, len(body.shape_labels))
    full_pose = torch.zeros(2, len(body.bone_names), 3).index_copy(1, lim.index, sub)
    ref, _ = body.pose(body.rest(shape), roma.rotvec_to_rotmat(full_pose))
    rest = body.rest(shape, None, lim.index)
    fast = sk.skin(rest.vertices, sk.transforms(rest.bone_poses, roma.rotvec_to_rotmat(sub)))
    assert (fast - ref).abs().max() < 1e-5
    # And our skinning matches Anny's own forward pass.
    T = torch.eye(4).repeat(2, len(body.bone_names), 1, 1)
    T[:, :, :3, :3] = roma.rotvec_to_rotmat(full_pose)
    anny_v = body.model(pose_parameters=T, phenotype_kwargs=shape)["vertices"]
    assert (anny_v - ref).abs().max() < 1e-5


def test_sparse_keypoints_close_to_anny_regressor(body):
    import anny

    full = anny.KeypointsRegressor.coco(body.model)
    order = [full.labels.index(n) for n in body.keypoint_names]
    out = body.model(phenotype_kwargs=body.default_shape())
    ours = body.keypoints(out["vertices"])
    ref = full(out)[:, order]
    assert (ours - ref).norm(dim=-1).max() < 0.01  # under 1 cm


def test_rest_states_of_fixed_shapes_are_kept_and_fitted_shapes_are_not(body):
    """A clip asks for each person's rest state several times a frame: a shape that is not being
    fitted gets the one computed before (the same values as computed afresh), on whichever
    vertex subset is asked for; a shape being fitted is computed each time, its gradient intact."""
    shape = body.default_shape(2)
    shape[1, 0] = 0.9
    ids = body.keypoint_vertex_ids
    for vertex_ids in (None, ids):
        first = body.rest(shape, vertex_ids)
        assert body.rest(shape.clone(), vertex_ids) is first  # same values, another tensor: kept
        fresh = body.rest(shape.clone().requires_grad_(True), vertex_ids)  # computed afresh
        for name in ("vertices", "bone_poses", "bone_heads", "bone_tails"):
            assert torch.equal(getattr(first, name), getattr(fresh, name).detach())
    other = shape.clone()
    other[0, 1] = 0.2
    assert not torch.equal(body.rest(other, ids).vertices[0], body.rest(shape, ids).vertices[0])
    fitted = shape.clone().requires_grad_(True)
    rest = body.rest(fitted, ids)
    assert rest is not body.rest(fitted, ids) and rest.vertices.requires_grad
    rest.vertices.sum().backward()
    assert fitted.grad is not None and fitted.grad.abs().sum() > 0


def test_phenotype_coefficients_equal_annys_to_the_bit(body):
    """The batched phenotype coefficients give anny's own values and gradients exactly, on
    shapes inside the range, on its anchors and edges, and beyond them (clamped)."""
    from inference.bodymodels.anny import PhenotypeCoefficients

    m = body.model
    fast = PhenotypeCoefficients.of(m)
    assert fast is not None  # our model has no local changes or facial actions: the fast path applies
    torch.manual_seed(0)
    shapes = [torch.rand(4, 6), torch.tensor([[0.0] * 6, [1.0] * 6, [0.5] * 6, [1 / 3, 2 / 3, 0.25, 0.75, 0.5, 0.1]]),
              torch.tensor([[-0.2, 1.3, 0.5, -1.0, 2.0, 0.5]])]  # fmt: skip
    for shape in shapes:
        theirs_in, ours_in = shape.clone().requires_grad_(True), shape.clone().requires_grad_(True)
        none = theirs_in.new_zeros((len(shape), 0))
        theirs = m._get_phenotype_blendshape_coefficients(theirs_in, none, none)
        ours = fast(ours_in)
        assert torch.equal(theirs, ours)
        g = torch.randn(theirs.shape)
        (theirs * g).sum().backward()
        (ours * g).sum().backward()
        assert torch.equal(theirs_in.grad, ours_in.grad)
    # And the phenotype moves the body: the coefficients are not constant.
    assert not torch.equal(fast(shapes[1][:1]), fast(shapes[1][1:2]))
