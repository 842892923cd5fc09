"""Training runs, exports loadable weights and resumes where it stopped."""

from __future__ import annotations

import torch

from inference.regressor_net import RegressorNet
from inference.train import main


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
    changed = [k for k, v in RegressorNet.load(w).state_dict().items() if v.is_floating_point() and not torch.equal(v, first[k])]
    assert changed  # the third step trained on
