"""The start's network: torchvision ResNet50 from the person's mask and
keypoint heatmaps to body parameters and a camera.

The keypoints also go in as numbers (crop coordinates and confidence, and
where the crop sits in the camera) through a residual MLP, the lifter:
lifting 2D keypoints to 3D is what an MLP learns fast (Martinez et al. 2017),
and it trains alone, without drawing images, at twenty times the rate of the
whole network. The ResNet's pooled features join the lifter's stream through
a projection that starts at zero: the convolutional trunk reads the
silhouette (shape, depth order, what the keypoints miss) on top of it.

Outputs, all in the crop's terms so they do not depend on the photo's size:
the global rotation (camera frame) and the fitted bones' local rotations as 6D
(first two matrix columns, Zhou et al. 2019), the body-model shape parameters,
and the camera as the pelvis position in crop coordinates plus the log of its
depth times the crop's angular size (depth * crop side / focal length), which
is about constant for a given body height.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch
import torchvision

from .. import keypoints as kpl
from .netinput import IN_CHANNELS, Crop

FORMAT = "human-recon-regressor-2"


@dataclass
class NetConfig:
    num_bones: int  # fitted bones (the joint-limit subset, in its order)
    num_shape: int
    bone_names: list[str]
    shape_labels: list[str]
    body_model: str = "anny"
    width: int = 1024  # the lifter's residual stream
    lifter_blocks: int = 2  # residual blocks in the lifter; those past the second start as the identity

    @property
    def num_outputs(self) -> int:
        return 6 + 6 * self.num_bones + self.num_shape + 3


@dataclass
class NetOutput:
    """Decoded network output for a batch."""

    global_rot: torch.Tensor  # (B, 3, 3) model space -> camera space
    pose: torch.Tensor  # (B, N, 3, 3) local rotations of the fitted bones
    shape: torch.Tensor  # (B, S) in the body model's bounds (0..1)
    root_xy: torch.Tensor  # (B, 2) pelvis in crop coordinates (-1..1)
    log_depth: torch.Tensor  # (B,) log(depth * crop side / focal)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotation (Gram-Schmidt on the two given columns)."""
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2))


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


class _Block(torch.nn.Module):
    """Residual MLP block (Martinez et al. 2017), LayerNorm so batch size does not matter."""

    def __init__(self, width: int, dropout: float = 0.1, gated: bool = False) -> None:
        super().__init__()
        # A gated block starts as the identity (gate 0) yet learns: the gate's gradient is the
        # block's output, which is not zero. So a deeper lifter can start from a trained shallower
        # one (a block behind a zeroed LayerNorm and a ReLU never got a gradient).
        self.gate = torch.nn.Parameter(torch.zeros(())) if gated else None
        self.f = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.LayerNorm(width), torch.nn.ReLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(width, width), torch.nn.LayerNorm(width), torch.nn.ReLU(), torch.nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.f(x) if self.gate is None else self.gate * self.f(x))


class RegressorNet(torch.nn.Module):
    """Keypoint lifter plus ResNet50 image branch, joined in one residual stream.

    The lifter (keypoints as numbers and the crop's place in the camera) can be
    trained alone at about 400 samples a second on two cores (the whole network
    takes about 20, drawing masks and running the ResNet); the ResNet's features enter
    through a projection that starts at zero, so adding the image branch starts
    from the lifter's answer and learns what the silhouette adds."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        net = torchvision.models.resnet50(weights=None)
        # Input: mask + one heatmap per keypoint instead of RGB.
        net.conv1 = torch.nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = torch.nn.Identity()
        self.net = net
        self.lifter_in = torch.nn.Linear(3 * kpl.NUM + 3, w)
        self.lifter = torch.nn.Sequential(*(_Block(w, gated=i >= 2) for i in range(config.lifter_blocks)))
        self.image_proj = torch.nn.Linear(2048, w)
        torch.nn.init.zeros_(self.image_proj.weight)
        torch.nn.init.zeros_(self.image_proj.bias)
        self.fuse = _Block(w)
        self.head = torch.nn.Linear(w, config.num_outputs)
        # Start from a neutral guess: identity bone rotations, mid shape, centred pelvis.
        torch.nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            bias = torch.zeros(config.num_outputs)
            eye6 = matrix_to_rot6d(torch.eye(3))
            bias[:6] = eye6
            bias[6 : 6 + 6 * config.num_bones] = eye6.repeat(config.num_bones)
            bias[-1] = float(np.log(2.0))
            self.head.bias.copy_(bias)

    def forward(self, x: torch.Tensor | None, keypoints: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, S, S) mask and heatmaps, or None for the lifter alone; ``keypoints``
        (B, K, 3) crop coordinates and weight; ``camera`` (B, 3) from ``camera_features``."""
        kp = torch.cat([keypoints[..., :2].clamp(-2, 2) * (keypoints[..., 2:] > 0), keypoints[..., 2:]], -1)
        h = self.lifter(self.lifter_in(torch.cat([kp.flatten(1), camera], 1)))
        if x is not None:
            h = h + self.image_proj(self.net(x))
        return self.head(self.fuse(h))

    def decode(self, out: torch.Tensor) -> NetOutput:
        c = self.config
        b = out.shape[0]
        n6 = 6 * c.num_bones
        return NetOutput(
            global_rot=rot6d_to_matrix(out[:, :6]),
            pose=rot6d_to_matrix(out[:, 6 : 6 + n6].reshape(b, c.num_bones, 6)),
            shape=torch.sigmoid(out[:, 6 + n6 : 6 + n6 + c.num_shape] * 4.0),
            root_xy=out[:, -3:-1],
            log_depth=out[:, -1],
        )

    # -- weights files -----------------------------------------------------------------

    def save(self, path: str | Path, metadata: dict | None = None) -> None:
        """Weights as float16 safetensors (half the size; the network runs in float32)."""
        from safetensors.torch import save_file

        path = Path(path)
        meta = {"format": FORMAT, "config": json.dumps(self.config.__dict__)}
        meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
        tensors = {
            k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in self.state_dict().items()
        }
        tmp = path.with_name(path.name + ".part")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "RegressorNet":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not a Human Recon regressor weights file")
            config = NetConfig(**json.loads(meta["config"]))
            state = {k: f.get_tensor(k) for k in f.keys()}
        net = cls(config)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        net.eval()
        return net


def camera_translation(
    root_xy: np.ndarray, log_depth: float, crop: Crop, K: np.ndarray, root_model_cam: np.ndarray
) -> np.ndarray:
    """Body translation (camera space) placing the pelvis where the network saw it.

    ``root_model_cam``: the pelvis of the rotated body before translation."""
    f = float(K[0, 0])
    depth = float(np.exp(log_depth)) * f / crop.side
    u, v = crop.to_image(np.asarray(root_xy, np.float64))
    pelvis = np.array([(u - K[0, 2]) * depth / f, (v - K[1, 2]) * depth / K[1, 1], depth])
    return pelvis - root_model_cam
