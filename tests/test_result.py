"""The result file: round trip, schema check, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import ReconError
from inference.io.result import SCHEMA_VERSION, ReconResult

from .conftest import PERSON


@pytest.fixture(scope="module")
def result(reconstructor):
    return reconstructor.reconstruct(PERSON)


def test_round_trip(result, tmp_path):
    path = result.save(tmp_path / "r.npz")
    back = ReconResult.load(path)
    assert back.schema_version == SCHEMA_VERSION and back.body_model == "anny"
    assert len(back.people) == len(result.people) == 1
    p, q = back.people[0], result.people[0]
    assert np.array_equal(p.vertices_cam, q.vertices_cam) and np.array_equal(p.bone_rotations, q.bone_rotations)
    assert list(back.bone_names) == list(result.bone_names)
    assert back.timings.keys() == result.timings.keys()
    assert p.mirrored == q.mirrored and p.silhouette_iou == q.silhouette_iou
    with np.load(path, allow_pickle=False) as z:  # plain arrays only: no pickle needed to read it
        # Per-person arrays have a leading person axis; shared ones do not.
        assert int(z["person_count"]) == 1 and z["keypoints3d_cam"].shape == (1, 17, 3)
        assert z["camera_K"].shape == (3, 3) and z["faces"].ndim == 2
        assert z["bone_rest_matrices"].shape == (1, len(result.bone_names), 4, 4)
        assert z["bone_rotations"].shape == (1, 1, len(result.bone_names), 4)


def test_round_trip_of_several_people(result, tmp_path):
    """Two people (the same one twice, the second moved): each comes back as written."""
    from dataclasses import replace

    moved = replace(result.people[0], root_translation=result.people[0].root_translation + [0.5, 0, 1.0],
                    mirrored=True)  # fmt: skip
    two = replace(result, people=[result.people[0], moved])
    back = ReconResult.load(two.save(tmp_path / "two.npz"))
    assert len(back.people) == 2 and back.people[1].mirrored and not back.people[0].mirrored
    assert np.allclose(back.people[1].root_translation - back.people[0].root_translation, [0.5, 0, 1.0])


def test_written_file_has_ordinary_permissions(result, tmp_path):
    """The atomic write's temporary file is private (0600); the result must not stay so."""
    import os

    mask = os.umask(0o022)
    try:
        path = result.save(tmp_path / "r.npz")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_existing_file_kept_unless_overwrite(result, tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(ReconError) as exc:
        result.save(path, overwrite=False)
    assert exc.value.code == "output_exists" and path.read_bytes() == b"keep me"


def test_failed_write_leaves_nothing(result, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(ReconError) as exc:
        result.save(tmp_path / "r.npz")
    assert exc.value.code == "output_not_writable"
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_and_other_schema(result, tmp_path):
    with pytest.raises(ReconError) as exc:
        result.save(tmp_path / "no" / "r.npz")
    assert exc.value.code == "output_not_writable"
    path = result.save(tmp_path / "r.npz")
    with np.load(path) as z:
        data = dict(z)
    data["schema_version"] = np.asarray(SCHEMA_VERSION + 1)
    np.savez(tmp_path / "newer.npz", **data)
    with pytest.raises(ReconError) as exc:
        ReconResult.load(tmp_path / "newer.npz")
    assert exc.value.code == "schema_mismatch" and str(SCHEMA_VERSION + 1) in exc.value.message


def test_python_api_returns_a_typed_result(cache_dir, tmp_path):
    import inference

    r = inference.reconstruct_image(PERSON, cache_dir=cache_dir)
    assert isinstance(r, inference.ReconResult) and r.schema_version == inference.SCHEMA_VERSION
    assert r.people[0].silhouette_iou > 0.7 and r.save(tmp_path / "api.npz").exists()
