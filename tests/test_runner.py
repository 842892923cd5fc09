"""The add-on's runner module as plain Python (it never imports bpy or torch)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time

import pytest

from .conftest import PERSON, ROOT


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("hr_runner", ROOT / "addon" / "human_recon" / "runner.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hr_runner"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    assert "bpy" not in mod.__dict__ and "torch" not in mod.__dict__
    return mod


def test_set_up_environment(runner, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("")  # nothing to install: the venv and pip still run for real
    # min_free_bytes=0: the venv and pip are under test here, not the disk check (below).
    py = runner.setup_environment(tmp_path / "venv", req, base_python=sys.executable, min_free_bytes=0)
    assert (tmp_path / "venv" / "bin" / "python").exists() and py.endswith("python")


def test_failed_setup_says_why_and_cleans_up(runner, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("human-recon-no-such-package==0.0.0\n")
    with pytest.raises(runner.RunnerError) as exc:
        runner.setup_environment(tmp_path / "venv", req, base_python=sys.executable, min_free_bytes=0)
    assert exc.value.code in ("setup_failed", "offline") and "\n" not in exc.value.message
    assert not (tmp_path / "venv").exists()
    with pytest.raises(runner.RunnerError) as exc:
        runner.setup_environment(tmp_path / "venv2", req, base_python=sys.executable, min_free_bytes=1 << 60)
    assert exc.value.code == "no_space" and not (tmp_path / "venv2").exists()


def test_interpreter_choice(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("HUMAN_RECON_PYTHON", raising=False)
    with pytest.raises(runner.RunnerError) as exc:
        runner.find_python("", tmp_path / "no-venv")
    assert exc.value.code == "no_interpreter" and "Set up environment" in exc.value.message
    with pytest.raises(runner.RunnerError) as exc:  # an explicit wrong path is reported, not replaced
        runner.find_python(str(tmp_path / "python"), None)
    assert "does not exist" in exc.value.message
    monkeypatch.setenv("HUMAN_RECON_PYTHON", sys.executable)
    assert runner.find_python("", None) == sys.executable


def test_run_reports_progress_and_result(runner, tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("HUMAN_RECON_CACHE_DIR", cache_dir)
    out = tmp_path / "r.npz"
    run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(out)))
    run.wait(300)
    events = run.poll()
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and "progress" in kinds and kinds[-1] == "done"
    assert run.error is None and run.result_path == str(out) and out.exists() and run.fraction == 1.0


def test_warm_jobs_share_one_worker_and_a_cancel_ends_it(runner, tmp_path, cache_dir, monkeypatch):
    """With the models kept loaded, jobs go to one worker process; a failed job leaves it
    running, a cancel ends it (and writes nothing), and the next job starts a new one."""
    monkeypatch.setenv("HUMAN_RECON_CACHE_DIR", cache_dir)

    def job(image, name):
        run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(image), str(tmp_path / name)), warm=True)
        run.wait(300)
        return run, run.poll()

    try:
        first, events = job(PERSON, "a.npz")
        pid = runner.worker_pid()
        assert first.error is None and first.result_path == str(tmp_path / "a.npz") and pid == first.proc.pid
        assert "load_models" in [e.data.get("stage") for e in events]
        missing, _ = job(tmp_path / "missing.jpg", "m.npz")
        assert missing.error.code == "not_found" and missing.exit_code != 0
        missing.cancel()  # the operator's clean-up after an error: the job is over, the worker stays
        second, events = job(PERSON, "b.npz")
        assert second.error is None and runner.worker_pid() == pid  # the same process, models loaded
        assert "load_models" not in [e.data.get("stage") for e in events] and events[-1].kind == "done"
        # A job while the worker is busy gets a process of its own; the worker's job goes on.
        busy = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(tmp_path / "e.npz")),
                                   warm=True)  # fmt: skip
        aside, _ = job(PERSON, "f.npz")
        busy.wait(300)
        busy.poll()
        assert aside.proc.pid != pid and aside.error is None and busy.error is None
        assert busy.proc.pid == runner.worker_pid() == pid

        run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(tmp_path / "c.npz")),
                                  warm=True)  # fmt: skip
        while not any(e.kind == "progress" for e in run.poll()):
            time.sleep(0.02)
        run.cancel()
        run.wait(10)
        run.poll()
        assert run.error.code == "cancelled" and run.proc.poll() is not None and runner.worker_pid() is None
        third, _ = job(PERSON, "d.npz")
        assert third.error is None and runner.worker_pid() not in (None, pid)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "d.npz", "e.npz", "f.npz"]
    finally:
        runner.stop_worker()
    assert runner.worker_pid() is None


@pytest.mark.parametrize("warm", [False, True])
def test_an_environment_without_torch_is_reported_as_incomplete(runner, tmp_path, cache_dir, warm):
    shadow = tmp_path / "shadow" / "torch"  # an environment where torch does not import
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent), HUMAN_RECON_CACHE_DIR=cache_dir)
    try:
        run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(tmp_path / "r.npz")),
                                  env=env, warm=warm)  # fmt: skip
        run.wait(120)
        run.poll()
        assert run.error.code == "broken_environment" and "No module named 'torch'" in run.error.message
        assert "Set up environment" in run.error.message and not (tmp_path / "r.npz").exists()
    finally:
        runner.stop_worker()


def test_set_up_from_blenders_own_python_with_nothing_on_path(runner, tmp_path, monkeypatch):
    """The environment is made from the Python running the add-on (Blender's), with no python3.11
    or python3.13 on PATH; it remembers its requirements, and says when the add-on's differ."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert runner.base_python() == sys.executable
    req = tmp_path / "requirements.txt"
    req.write_text("")
    run = runner.SetupRun(tmp_path / "venv", req, min_free_bytes=0)
    seen = []
    while not run.step(0.05):
        seen.append(run.status)
    assert run.error is None and run.python == str(runner.venv_python(tmp_path / "venv")) and run.fraction == 1.0
    assert "Making the environment" in seen or run.status == "Ready"
    assert not runner.environment_outdated(tmp_path / "venv", req)
    req.write_text("numpy==1.26.4\n")  # a newer add-on's requirements
    assert runner.environment_outdated(tmp_path / "venv", req)


def test_cancelled_set_up_removes_the_half_made_environment(runner, tmp_path):
    from .blender_check import hanging_index

    req = tmp_path / "requirements.txt"
    req.write_text(f"--index-url {hanging_index()}\nhuman-recon-never-there\n")  # pip waits on the index
    venv = tmp_path / "venv"
    run = runner.SetupRun(venv, req, min_free_bytes=0)
    while run.fraction < 0.05 and not run.finished:  # the environment is made; pip starts
        run.step(0.1)
    run.step(1.0)
    assert venv.exists() and not run.finished
    run.cancel()
    assert run.finished and run.error.code == "cancelled" and "\n" not in run.error.message
    assert not venv.exists()


def test_child_arguments_are_the_clis(runner):
    """What the add-on asks the inference child for parses as the command line means it."""
    from inference.cli import build_parser

    photo = build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz", "fast", "anny", "", "2"))
    assert (photo.command, photo.images, photo.people, photo.quality) == ("reconstruct", ["a.jpg"], 2, "fast")
    clip = build_parser().parse_args(runner.sequence_args("c.mp4", "c.npz", 5, 40, 2, people="largest",
                                                          track_model="heavy"))  # fmt: skip
    assert (clip.start, clip.end, clip.step, clip.people, clip.track_model) == (5, 40, 2, "largest", "heavy")
    assert build_parser().parse_args(runner.sequence_args("c.mp4", "c.npz")).track_model == "heavy"
    # The people's height: the panel's value, and by default the same as the command line's.
    from inference.io.result import DEFAULT_HEIGHT_M

    assert runner.DEFAULT_HEIGHT_M == DEFAULT_HEIGHT_M
    assert build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz")).height == DEFAULT_HEIGHT_M
    assert build_parser().parse_args(runner.sequence_args("c.mp4", "c.npz", height=1.92)).height == 1.92
    # Fingers: on unless the panel's Fingers is off.
    assert build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz")).hands == "on"
    assert build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz", hands=False)).hands == "off"
    assert build_parser().parse_args(runner.sequence_args("c.mp4", "c.npz", hands=False)).hands == "off"
    # The focal length: the photo's own (EXIF) or a guess unless the panel gives one, within the CLI's range.
    from inference.lens import EQUIVALENT_MM

    assert runner.FOCAL_MM_RANGE == EQUIVALENT_MM
    assert build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz")).focal_mm is None
    assert build_parser().parse_args(runner.reconstruct_args("a.jpg", "a.npz", focal_mm=26.0)).focal_mm == 26.0
    assert build_parser().parse_args(runner.sequence_args("c.mp4", "c.npz", focal_mm=28.5)).focal_mm == 28.5
