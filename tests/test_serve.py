"""The warm worker (``python -m inference serve``) as the add-on drives it: jobs on stdin, the
command line's events on stdout, the models loaded once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from inference.errors import EXIT_INPUT
from inference.serve import release_memory

from .conftest import PERSON, ROOT


class Worker:
    def __init__(self, cache_dir: str, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HUMAN_RECON_CACHE_DIR=cache_dir)
        self.proc = subprocess.Popen([sys.executable, "-m", "inference", "serve", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip

    def events(self, until: str = "finished") -> list[dict]:
        out = []
        for line in self.proc.stdout:
            out.append(json.loads(line))  # every stdout line is JSON
            if out[-1]["event"] == until:
                return out
        raise AssertionError(f"the worker ended before {until!r}: {out} {self.proc.stderr.read()}")

    def job(self, *argv: str) -> list[dict]:
        self.send(json.dumps({"argv": list(argv)}))
        return self.events()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


def _arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "timing_seconds"}


def test_one_worker_runs_photo_and_clip_jobs_with_the_models_loaded_once(tmp_path, cache_dir):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        shutil.copy(PERSON, frames / f"f{i}.jpg")
    w = Worker(cache_dir)
    ready = w.events(until="ready")
    assert ready[-1]["schema_version"] == 2 and ready[-1]["version"]

    first = w.job("reconstruct", str(PERSON), "-o", str(tmp_path / "a.npz"))
    assert [e["stage"] for e in first if e["event"] == "progress"][0] == "load_models"
    assert first[-1] == {"event": "finished", "exit_code": 0}
    assert [e["path"] for e in first if e["event"] == "result"] == [str(tmp_path / "a.npz")]

    # Lines that are not jobs, and a job that fails, are answered and the worker goes on.
    for line, words in [("hello", "JSON line"), ('{"argv": ["export", "x.npz"]}', "not 'export'"),
                        ('{"argv": ["reconstruct"]}', "not a valid reconstruct")]:  # fmt: skip
        w.send(line)
        ev = w.events()
        assert [e["event"] for e in ev] == ["error", "finished"] and words in ev[0]["message"], ev
        assert ev[0]["code"] == "bad_argument" and ev[-1]["exit_code"] == 2
    missing = w.job("reconstruct", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "m.npz"))
    assert [e["code"] for e in missing if e["event"] == "error"] == ["not_found"]
    assert missing[-1]["exit_code"] == EXIT_INPUT

    # A clip, then the photo again: the models are not loaded again, and the photo's result is
    # the same as the first one's (nothing a job leaves behind changes the next).
    clip = w.job("sequence", str(frames), "-o", str(tmp_path / "clip.npz"))
    photo = frames / "föto é.jpg"  # a name that is not ASCII travels in the JSON line
    shutil.copy(PERSON, photo)
    again = w.job("reconstruct", str(photo), "-o", str(tmp_path / "b.npz"))
    for ev in (clip, again):
        assert ev[-1]["exit_code"] == 0 and "load_models" not in [e.get("stage") for e in ev]
    assert [e["frames"] for e in clip if e["event"] == "result"] == [3]
    assert [e["image"] for e in again if e["event"] == "result"] == [str(photo)]
    a, b = _arrays(tmp_path / "a.npz"), _arrays(tmp_path / "b.npz")
    assert a.keys() == b.keys() and [k for k in a if not np.array_equal(a[k], b[k])] == ["image_path"]

    # Other options mean other models: loaded again, by the job or ahead of it (the add-on asks
    # as soon as a photo is chosen).
    other = w.job("reconstruct", str(PERSON), "-o", str(tmp_path / "c.npz"), "--hands", "off")
    assert "load_models" in [e.get("stage") for e in other] and other[-1]["exit_code"] == 0
    for bad in (["export", "x.npz"], ["reconstruct", "--quality", "none"], [], 5):  # answered, nothing else
        w.send(json.dumps({"load": bad}))
        assert w.events(until="loaded") == [{"event": "loaded", "ok": False}]
    w.send(json.dumps({"load": ["reconstruct", "chosen.jpg", "-o", "chosen.npz", "--quality", "fast"]}))
    assert w.events(until="loaded") == [{"event": "loaded", "ok": True}]
    fast = w.job("reconstruct", str(PERSON), "-o", str(tmp_path / "d.npz"), "--quality", "fast")
    assert "load_models" not in [e.get("stage") for e in fast] and fast[-1]["exit_code"] == 0

    w.proc.stdin.close()  # the add-on (or Blender) is gone: the worker ends
    assert w.proc.wait(60) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "c.npz", "clip.npz", "d.npz", "frames"]


def test_a_cancel_ends_the_job_and_the_worker_and_an_idle_worker_quits(tmp_path, cache_dir):
    w = Worker(cache_dir)
    w.events(until="ready")
    w.send(json.dumps({"argv": ["reconstruct", str(PERSON), "-o", str(tmp_path / "a.npz")]}))
    w.events(until="progress")
    w.proc.send_signal(signal.SIGTERM)  # the add-on's Cancel
    ev = w.events()
    assert [e["code"] for e in ev if e["event"] == "error"] == ["cancelled"] and ev[-1]["exit_code"] == 130
    assert w.proc.wait(60) == 130 and list(tmp_path.iterdir()) == []

    idle = Worker(cache_dir, "--idle-exit", "0.5")
    idle.events(until="ready")
    assert idle.proc.wait(60) == 0  # no job came: it quits, its memory freed


def test_a_worker_hands_the_memory_a_job_freed_back_to_the_system():
    if not release_memory():
        pytest.skip("glibc's malloc_trim only (Linux)")

    def rss_mb() -> float:
        return int(open(f"/proc/{os.getpid()}/status").read().split("VmRSS:")[1].split()[0]) / 1024

    held = [bytearray(1024) for _ in range(200_000)]  # 200 MB from malloc, as a clip's frames are
    del held
    before = rss_mb()
    assert release_memory()
    assert before - rss_mb() > 100


def test_a_worker_whose_environment_lacks_a_package_says_so_once_and_ends(tmp_path, cache_dir):
    shadow = tmp_path / "shadow" / "torch"  # an environment where torch does not import
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    env = dict(os.environ, PYTHONPATH=f"{shadow.parent}{os.pathsep}{ROOT}", HUMAN_RECON_CACHE_DIR=cache_dir)
    proc = subprocess.run([sys.executable, "-m", "inference", "serve"], input="", capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["error"] and "No module named 'torch'" in events[0]["message"], events
    assert events[0]["code"] == "internal" and proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
