"""Train the ResNet50 regressor on synthetic bodies: ``python -m training.train``.

On the CPU, or with ``--device cuda`` on a GPU: then the loader's workers only
draw each sample's random numbers on the CPU cores and the GPU makes the
batches and trains (about 25,000 keypoint samples a second on an H200 with 16
cores, against about 450 on a 2-core CPU). Nothing else needs a GPU.

Resumable: the checkpoint (model, optimiser, step) is written every few
minutes and on Ctrl-C / SIGTERM, and a new run with the same ``--checkpoint``
goes on from it; the data stream is seeded by step, so a
resumed run sees the same samples it would have seen. Every ``--eval-every``
steps the weights are exported (float16 safetensors) with their validation
error, so a background run can be stopped at any time.

Losses: 3D keypoints and a vertex sample (pelvis-centred, camera frame), 3D
keypoints after Procrustes alignment (the local pose), 2D reprojection in the
crop, parameters (rotation matrices, phenotype) and the camera (pelvis
position and depth).

Stages (``training/recipe.sh``): ``--keypoints-only`` trains the
keypoint lifter alone at a few hundred samples a second (no mask or heatmaps
are drawn and the ResNet is skipped); a later stage starts from its weights
(``--init-from``) and a trained ResNet trunk (``--trunk-from``) and trains the
whole network on images.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import roma
import torch

from inference import keypoints as kpl
from inference.bodymodels.anny import AnnyBody
from inference.bodymodels.joints import JointLimits
from inference.bodymodels.lbs import CollapsedSkeleton
from inference.regress.net import NetConfig, RegressorNet

from .synth import VAL_SEED0, SynthBatch, SyntheticData, crop_coords, project_batch

VERTEX_STRIDE = 17


class BodyLoss:
    """Differentiable body from predicted parameters: keypoints and a vertex sample."""

    def __init__(self, body) -> None:
        self.body = body
        self.limits = JointLimits(body.bone_names, body.pose_limits)
        sample = torch.arange(0, body.num_vertices, VERTEX_STRIDE)
        self.vertex_ids = torch.unique(torch.cat([body.keypoint_vertex_ids, sample]))
        self.kp_cols = torch.searchsorted(self.vertex_ids, body.keypoint_vertex_ids)
        self.v_cols = torch.searchsorted(self.vertex_ids, sample)
        self.skeleton = CollapsedSkeleton(
            body.bone_parents, self.limits.index.tolist(), body.skin_matrix[self.vertex_ids]
        )
        self.bone_ids = self.limits.index

    def to(self, device: str | torch.device) -> "BodyLoss":
        """Move the index tensors and skeleton (the body model moves with ``SyntheticData.to``)."""
        for name in ("vertex_ids", "kp_cols", "v_cols", "bone_ids"):
            setattr(self, name, getattr(self, name).to(device))
        self.skeleton.to(device)
        return self

    def __call__(self, shape: torch.Tensor, pose: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pelvis-centred keypoints (B, K, 3) and vertex sample (B, N, 3), camera orientation."""
        rest = self.body.rest(shape, self.vertex_ids, self.bone_ids)
        v = self.skeleton.skin(rest.vertices, self.skeleton.transforms(rest.bone_poses, pose))
        v = torch.einsum("bij,bvj->bvi", R, v)
        kp = self.body.keypoints(v[:, self.kp_cols], self.body.keypoint_vertex_ids)
        pelvis = kpl.pelvis(kp)
        return kp - pelvis, v[:, self.v_cols] - pelvis


def losses(
    net: RegressorNet, body_loss: BodyLoss, batch, out: torch.Tensor, pa_weight: float = 5.0
) -> dict[str, torch.Tensor]:
    p = net.decode(out)
    kp, verts = body_loss(p.shape, p.pose, p.global_rot)
    with torch.no_grad():
        kp_t, verts_t = body_loss(batch.shape, batch.pose, batch.global_rot)
    # 2D: predicted pelvis-centred keypoints placed at the predicted camera, in crop coordinates.
    depth = torch.exp(p.log_depth) * batch.K[:, 0, 0] / batch.crop_side
    pelvis_img = batch.crop_center + p.root_xy * (batch.crop_side[:, None] / 2)
    c = batch.K[:, :2, 2]
    f = batch.K[:, 0, 0]
    pelvis = torch.cat([(pelvis_img - c) * (depth / f)[:, None], depth[:, None]], 1)
    xy = crop_coords(project_batch(kp + pelvis[:, None], batch.K, min_depth=0.1), batch.crop_center, batch.crop_side)
    pelvis_t = kpl.pelvis(batch.keypoints3d)
    xy_t = crop_coords(project_batch(kp_t + pelvis_t, batch.K), batch.crop_center, batch.crop_side)
    # The same keypoints after the best similarity transform (the PA-MPJPE the benchmark reports):
    # the local pose and proportions, which the fit cannot fix, apart from the global rotation, which it can.
    Rp, tp, sp = roma.rigid_points_registration(kp, kp_t, compute_scaling=True)
    kp_pa = sp[:, None, None] * torch.einsum("bij,bkj->bki", Rp, kp) + tp[:, None]
    out = {
        "kp3d": (kp - kp_t).norm(dim=-1).mean(),
        "kp3d_pa": (kp_pa - kp_t).norm(dim=-1).mean(),
        "verts": (verts - verts_t).norm(dim=-1).mean(),
        "kp2d": (xy - xy_t).norm(dim=-1).clamp(max=1.0).mean(),
        "rot": (p.pose - batch.pose).pow(2).sum((-1, -2)).mean()
        + (p.global_rot - batch.global_rot).pow(2).sum((-1, -2)).mean(),
        "shape": (p.shape - batch.shape).abs().mean(),
        "camera": (p.root_xy - batch.root_xy).abs().sum(-1).mean() + (p.log_depth - batch.log_depth).abs().mean(),
    }
    w = {"kp3d": 5.0, "kp3d_pa": pa_weight, "verts": 5.0, "kp2d": 1.0, "rot": 0.1, "shape": 0.5, "camera": 0.5}
    out["total"] = sum(w[k] * out[k] for k in w)
    return out


def run_net(net: RegressorNet, batch, images: bool = True) -> torch.Tensor:
    return net(batch.inputs if images else None, batch.keypoints_in, batch.camera_in)


def evaluate(net, body_loss, data, seeds, batch_size=32, images: bool = True) -> dict[str, float]:
    net.eval()
    sums: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for i in range(0, len(seeds), batch_size):
            b = data.batch(seeds[i : i + batch_size], images=images)
            ls = losses(net, body_loss, b, run_net(net, b, images))
            for k, v in ls.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(b.shape)
            n += len(b.shape)
    net.train()
    return {k: v / n for k, v in sums.items()}


class BatchStream(torch.utils.data.IterableDataset):
    """The training stream from ``step`` on: batch ``i`` holds seeds ``i * size + offset ...``,
    so a resumed run sees the samples it would have seen. Drawn in a worker process so that
    making samples overlaps the training step. ``draws_only``: the workers only draw (the
    random part, per sample) and the training process makes the batch on its device (a GPU)."""

    def __init__(self, data: SyntheticData, start: int, stop: int, size: int, offset: int, images: bool,
                 draws_only: bool = False) -> None:  # fmt: skip
        self.data, self.start, self.stop, self.size, self.offset, self.images = data, start, stop, size, offset, images
        self.draws_only = draws_only

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            torch.set_num_threads(1)
            # Ctrl-C or a kill of the whole process group is for the main process, which finishes
            # its step, saves the checkpoint and shuts this worker down; dying first would lose both.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        make = self.data.draw if self.draws_only else self.data.batch
        # Worker k of n takes every n-th batch; the loader hands them out in order.
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in range(self.start + k, self.stop, n):
            yield make(np.arange(i * self.size, (i + 1) * self.size) + self.offset, images=self.images)


def load_matching(net: RegressorNet, path: str | Path, prefix: str = "") -> int:
    """Copy the tensors of a weights file (any format version) that match ``net``'s by name,
    prefix and shape; return how many."""
    from safetensors import safe_open

    own = net.state_dict()
    n = 0
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            if k.startswith(prefix) and k in own and list(own[k].shape) == list(f.get_slice(k).get_shape()):
                own[k].copy_(f.get_tensor(k).to(own[k].dtype))
                n += 1
    return n


def lr_at(step: int, total: int, base: float, warmup: int = 200, progress: float | None = None) -> float:
    """Linear warm-up, then a cosine to 5% over the run (``progress`` 0..1 if the run is timed)."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup)) if progress is None else min(1.0, progress)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/regressor/checkpoint.pt", help="resumed from if it exists")
    ap.add_argument("--weights", default="runs/regressor/regressor.safetensors", help="exported weights (float16)")
    ap.add_argument(
        "--steps", type=int, default=3000, help="total optimiser steps (the learning-rate schedule's length)"
    )
    ap.add_argument("--minutes", type=float, default=None,
                    help="train this long instead (the schedule runs over the time; --steps is then a cap)")
    ap.add_argument(
        "--device", default="cpu", help="where the network trains and batches are made (cuda: workers only draw)"
    )
    ap.add_argument("--width", type=int, default=1024, help="a fresh network's lifter width")
    ap.add_argument("--lifter-blocks", type=int, default=2,
                    help="a fresh network's lifter blocks (past the second they start as the identity, so "
                         "--init-from a two-block lifter works)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--val-size", type=int, default=128)
    ap.add_argument("--save-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument(
        "--workers", type=int, default=1, help="processes drawing samples ahead of the training step (0: inline)"
    )
    ap.add_argument("--keypoints-only", action="store_true",
                    help="train the keypoint lifter alone (no mask or heatmaps drawn, no ResNet): fast pre-training")
    ap.add_argument("--init-from", action="append", default=[], metavar="WEIGHTS",
                    help="a fresh run starts from the tensors of these weights files that match by name and shape "
                         "(later files win)")
    ap.add_argument(
        "--trunk-from",
        default=None,
        metavar="WEIGHTS",
        help="a fresh run takes the ResNet trunk ('net.*') from this file",
    )
    ap.add_argument("--lifter-lr-scale", type=float, default=1.0,
                    help="learning rate of the lifter, fusion and head relative to --lr (the image branch gets --lr)")
    ap.add_argument("--pa-weight", type=float, default=5.0, help="weight of the Procrustes-aligned 3D keypoint loss")
    ap.add_argument("--dropout", type=float, default=None,
                    help="dropout in the lifter and fusion blocks (default: the network's 0.1); 0 for a last stage, "
                         "since the data stream never repeats")
    ap.add_argument("--keypoint-noise", type=float, default=1.0,
                    help="scale of the keypoints' jitter and outlier rate (MediaPipe on rendered bodies: about 1.5)")
    ap.add_argument(
        "--seed-offset", type=int, default=0, help="first training sample's seed (a second stage sees new samples)"
    )
    ap.add_argument("--cache-dir", default=None)
    return ap


def _make_net(args: argparse.Namespace, body, lim: JointLimits) -> RegressorNet:
    """A fresh network for ``body``'s fitted bones (weights come later: a checkpoint or --init-from)."""
    config = NetConfig(num_bones=len(lim.names), num_shape=len(body.shape_labels), bone_names=lim.names,
                       shape_labels=body.shape_labels, body_model=body.name, width=args.width,
                       lifter_blocks=args.lifter_blocks)  # fmt: skip
    torch.manual_seed(0)
    net = RegressorNet(config)
    if args.dropout is not None:
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = args.dropout
    return net


def _make_optimizer(net: RegressorNet, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW with two parameter groups: the image branch (ResNet trunk and its projection) and the
    rest (lifter, fusion, head), whose rate can be scaled down when an image stage starts from a
    trained lifter."""
    groups: dict[bool, list] = {True: [], False: []}
    for name, param in net.named_parameters():
        groups[name.startswith(("net.", "image_proj."))].append(param)
    return torch.optim.AdamW(
        [{"params": groups[True], "scale": 1.0}, {"params": groups[False], "scale": args.lifter_lr_scale}],
        lr=args.lr, weight_decay=1e-4,
    )  # fmt: skip


class _Run:
    """Where a training run stands (step, seconds trained, validation history), saved to and
    resumed from its checkpoint file."""

    def __init__(self, path: Path, net: RegressorNet, opt: torch.optim.Optimizer) -> None:
        self.path, self.net, self.opt = path, net, opt
        self.step, self.seconds, self.history = 0, 0.0, []

    def resume(self) -> bool:
        if not self.path.exists():
            return False
        state = torch.load(self.path, weights_only=True, map_location="cpu")
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.history = json.loads(state["history"])
        print(f"resumed from {self.path} at step {self.step} ({self.seconds / 60:.0f} min trained)", flush=True)
        return True

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".part")
        torch.save({"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                    "seconds": self.seconds, "history": json.dumps(self.history)}, tmp)  # fmt: skip
        tmp.replace(self.path)


def _start_from(net: RegressorNet, args: argparse.Namespace) -> None:
    """A fresh run's tensors from --init-from files and the ResNet trunk from --trunk-from."""
    for path, prefix in [(p, "") for p in args.init_from] + ([(args.trunk_from, "net.")] if args.trunk_from else []):
        n = load_matching(net, path, prefix)
        print(f"started from {n} tensors of {path}", flush=True)


def _batches(args: argparse.Namespace, data: SyntheticData, run: _Run, images: bool, device: torch.device,
             moved: tuple) -> Callable[[], SynthBatch]:  # fmt: skip
    """The training stream from the run's step on. On a GPU the loader's workers only draw, and
    ``moved`` (the data, the loss, the network) and the optimiser's state go to the device."""
    draws_only = device.type != "cpu"
    stream = iter(torch.utils.data.DataLoader(
        BatchStream(data, run.step, args.steps, args.batch, args.seed_offset, images, draws_only), batch_size=None,
        num_workers=args.workers, prefetch_factor=4 if args.workers else None, collate_fn=lambda b: b,
    ))  # fmt: skip
    if not draws_only:
        return lambda: next(stream)
    # Only now, with the loader's workers forked, does anything touch the GPU: the workers only
    # draw, on the CPU.
    for m in moved:
        m.to(device)
    for st in run.opt.state.values():
        st.update({k: v.to(device) for k, v in st.items() if torch.is_tensor(v) and k != "step"})
    return lambda: data.make(next(stream))


def _train(args: argparse.Namespace, run: _Run, body_loss: BodyLoss, data: SyntheticData, next_batch,
           images: bool, weights_path: Path, stop: dict) -> None:  # fmt: skip
    """Optimiser steps until --steps, --minutes or a signal; validation and export every --eval-every."""
    net, opt = run.net, run.opt
    val_seeds = np.arange(VAL_SEED0, VAL_SEED0 + args.val_size)
    net.train()
    last_save = time.time()
    smoothed: dict[str, float] = {}
    timed = args.minutes is not None
    out_of_time = lambda: timed and run.seconds >= args.minutes * 60  # noqa: E731
    while run.step < args.steps and not stop["now"] and not out_of_time():
        t0 = time.perf_counter()
        progress = run.seconds / (args.minutes * 60) if timed else None
        for g in opt.param_groups:
            g["lr"] = lr_at(run.step, args.steps, args.lr, progress=progress) * g["scale"]
        batch = next_batch()
        ls = losses(net, body_loss, batch, run_net(net, batch, images), args.pa_weight)
        opt.zero_grad()
        ls["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        run.step += 1
        run.seconds += time.perf_counter() - t0
        for k, v in ls.items():
            v = float(v.detach())
            smoothed[k] = 0.9 * smoothed.get(k, v) + 0.1 * v
        if run.step % 25 == 0:
            print(f"step {run.step}/{args.steps} {run.seconds / 60:.1f} min  "
                  + " ".join(f"{k} {v:.4f}" for k, v in smoothed.items()), flush=True)  # fmt: skip
        if run.step % args.eval_every == 0 or run.step == args.steps or out_of_time():
            val = evaluate(net, body_loss, data, val_seeds, images=images)
            run.history.append({"step": run.step, "minutes": round(run.seconds / 60, 1),
                                **{k: round(v, 5) for k, v in val.items()}})  # fmt: skip
            print("validation " + json.dumps(run.history[-1]), flush=True)
            net.save(weights_path, {"step": run.step, "train_minutes": round(run.seconds / 60, 1),
                                    "validation": run.history[-1]})  # fmt: skip
            run.save()
            last_save = time.time()
        elif time.time() - last_save > args.save_minutes * 60:
            run.save()
            last_save = time.time()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    images = not args.keypoints_only
    if args.threads:
        torch.set_num_threads(args.threads)
    body = AnnyBody(args.cache_dir)
    data = SyntheticData(body, keypoint_noise=args.keypoint_noise)
    body_loss = BodyLoss(body)
    net = _make_net(args, body, body_loss.limits)
    ckpt_path, weights_path = Path(args.checkpoint), Path(args.weights)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    run = _Run(ckpt_path, net, _make_optimizer(net, args))
    if not run.resume():
        _start_from(net, args)

    stop = {"now": False}

    def on_signal(signum, frame):  # finish the step, save, leave
        stop["now"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        next_batch = _batches(args, data, run, images, torch.device(args.device), (data, body_loss, net))
        _train(args, run, body_loss, data, next_batch, images, weights_path, stop)
        run.save()
        print(f"checkpoint at step {run.step} in {ckpt_path}", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
