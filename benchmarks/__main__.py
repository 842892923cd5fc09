"""One entry point for every benchmark: ``python -m benchmarks photos|clip|regressor|real|transfer|hands``.

Each prints one JSON report (``--json``: on one line; ``--output FILE``: also written there).
Tables and the numbers measured so far: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from inference.errors import ReconError, exit_code_for


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="the report on one line")
    common.add_argument("--output", default=None, help="also write the report to this file")
    common.add_argument("--cache-dir", default=None, help="body-model cache folder (default ~/.cache/human_recon)")
    sub = p.add_subparsers(dest="benchmark", required=True)

    ph = sub.add_parser("photos", parents=[common], help="speed and fit quality of the photo pipeline")
    ph.add_argument("images", nargs="*", help="photos to measure besides the bundled one")
    ph.add_argument("--repeats", type=int, default=5)
    ph.add_argument("--quality", choices=["fast", "balanced", "best"], default="balanced")

    cl = sub.add_parser("clip", parents=[common], help="speed and smoothness of the clip pipeline")
    cl.add_argument("clip", help="a video file or a folder of frames")
    cl.add_argument("--frames", type=int, default=60, help="frames of the clip to use")
    cl.add_argument("--people", default="all", help="whom to follow: all (default), largest or N")

    r = sub.add_parser("regressor", parents=[common],
                       help="the trained start on held-out synthetic bodies and photos, against the landmark start")
    r.add_argument("images", nargs="*", help="real photos besides the bundled one")
    r.add_argument("--samples", type=int, default=500, help="held-out synthetic bodies")
    r.add_argument("--workers", type=int, default=2, help="processes for the synthetic set")
    r.add_argument("--clip", default=None, help="also every --clip-step-th frame of this video as a real photo")
    r.add_argument("--clip-step", type=int, default=25)
    r.add_argument("--renders", default=None, metavar="DIR",
                   help="also the photo pipeline, real detector included, on bodies rendered by "
                        "python -m training.render_bodies")  # fmt: skip
    r.add_argument("--weights", default=None, help="regressor weights to benchmark instead of the bundled ones")

    rl = sub.add_parser("real", parents=[common], help="3D accuracy on real multi-view ground truth")
    rl.add_argument("--kit", default=None, help="the multi-view kit's folder (default: ../shared/realbench)")
    rl.add_argument("--clips", action="store_true", help="also the clip pipeline on the kit's four clips")
    rl.add_argument("--true-focal", action="store_true", help="give the pipeline the cameras' focal lengths")
    rl.add_argument("--exif-focal", action="store_true",
                    help="the cameras' focal lengths in the photos' EXIF, as phones record them")
    rl.add_argument("--clip-focal-mm", type=float, default=None, metavar="MM",
                    help="give the clip pipeline this lens (35 mm equivalent; the kit's cameras: 33), as --focal-mm")
    rl.add_argument("--compare", default=None, metavar="OLD.json", help="paired difference to an earlier report")
    rl.add_argument("--photos", default="cam*_f*.jpg",
                    help="a glob of the kit's photos to run (default: all 80; '': none, clips only)")
    rl.add_argument("--people", default="all", help="whom to reconstruct: all (default), largest or N")
    rl.add_argument("--track-model", default=None, choices=["full", "heavy"],
                    help="the model that follows people in the clips (default: the pipeline's)")
    rl.add_argument("--hands", default="on", choices=["on", "off"], help="fit the fingers (default on)")
    rl.add_argument("--clip-step", type=int, default=1, choices=[1, 2, 5],
                    help="read every n-th frame of the clips (2: at 30 fps, as most cameras film; default 1: 60 fps)")
    t = sub.add_parser("transfer", parents=[common], help="speed and fidelity of Transfer motion and export")
    t.add_argument("--result", default=None, help="a clip's result to transfer (default: reconstruct --clip)")
    t.add_argument("--clip", default=str(Path(__file__).resolve().parent.parent / "tests" / "data" / "demo.mp4"))
    t.add_argument("--frames", type=int, default=300, help="frames of the clip, played forward then back")
    t.add_argument("--repeats", type=int, default=3)
    h = sub.add_parser("hands", parents=[common], help="finger fit on real pictures and synthetic hands")
    h.add_argument("images", nargs="*", help="photos to measure besides the bundled one")
    h.add_argument("--kit", default=None, help="the multi-view kit's folder (default: ../shared/realbench)")
    h.add_argument("--clip-frames", type=int, default=230, help="frames of the test clip (every 10th is used; 0: none)")
    h.add_argument("--synthetic", type=int, default=64, help="synthetic hands (0: none)")
    h.add_argument("--rendered", type=int, default=48, help="rendered hands (0: none)")
    h.add_argument("--keep-renders", default=None, metavar="DIR", help="also save the rendered hands there")
    h.add_argument("--real", action=argparse.BooleanOptionalAction, default=True, help="the real pictures")
    h.add_argument("--sequence-frames", type=int, default=120,
                   help="frames of the test clip followed as a clip (0: none)")
    h.add_argument("--rate-clip", default=None, metavar="CLIP",
                   help="also this clip with hands searched in every frame and at the default rate "
                        "(the kit's 60 fps cam01.mp4 shows the difference)")  # fmt: skip
    h.add_argument("--rate-frames", type=int, default=100, help="frames of --rate-clip")
    h.add_argument("--seed", type=int, default=0,
                   help="draws of the rendered and synthetic hands (0 chose the fit's settings; 1 is held out)")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.benchmark == "photos":
        from .photos import run_benchmark

        return run_benchmark(images=args.images, repeats=args.repeats, quality=args.quality, cache_dir=args.cache_dir)
    if args.benchmark == "clip":
        from .clip import run_sequence_benchmark

        return run_sequence_benchmark(args.clip, end=args.frames, cache_dir=args.cache_dir, people=args.people)
    if args.benchmark == "real":
        from .real import run_real_benchmark

        return run_real_benchmark(args.kit, clips=args.clips, true_focal=args.true_focal, cache_dir=args.cache_dir,
                                  compare=args.compare, photos=args.photos, people=args.people,
                                  track_model=args.track_model, hands=args.hands == "on",
                                  clip_step=args.clip_step, exif_focal=args.exif_focal,
                                  clip_focal_mm=args.clip_focal_mm)  # fmt: skip
    if args.benchmark == "hands":
        from .hands import run_hands_benchmark

        return run_hands_benchmark(args.images, args.kit, args.clip_frames, args.synthetic, args.rendered,
                                   args.cache_dir, args.keep_renders, args.real, args.seed,
                                   args.sequence_frames, args.rate_clip, args.rate_frames)  # fmt: skip
    if args.benchmark == "transfer":
        from .transfer import run_transfer_benchmark

        return run_transfer_benchmark(args.result, args.clip, args.frames, args.repeats, args.cache_dir)
    from .regressor import run_regressor_benchmark

    return run_regressor_benchmark(
        samples=args.samples, images=args.images, workers=args.workers, cache_dir=args.cache_dir, weights=args.weights,
        clip=args.clip, clip_step=args.clip_step, renders=args.renders,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stdout carries the report only: libraries' banners (Warp, TFLite) go to stderr.
    report_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        report = run(args)
    except ReconError as err:  # a bad path or an empty folder: one line, before any work
        print(f"error: {err.message}", file=sys.stderr)
        return exit_code_for(err.code)
    text = json.dumps(report) if args.json else json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(text, file=report_out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
