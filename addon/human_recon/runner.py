"""Runs the bundled inference package in a separate Python (plain Python, no bpy).

The add-on never imports torch: it starts ``python -m inference ... --json-progress``
with the bundled package on ``PYTHONPATH`` (no shell), reads JSON lines from
its stdout on a thread, and cancels by ending the child process. With the models
kept loaded (the preference), one such process, ``python -m inference serve``,
stays and runs the jobs one after another.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# The inference package travels inside the add-on, in this folder (build_addon.py puts
# it there); run from a source checkout, the repository root holds it.
PACKAGE_DIR = Path(__file__).resolve().parent / "inference_pkg"
if not (PACKAGE_DIR / "inference").is_dir():
    PACKAGE_DIR = Path(__file__).resolve().parents[2]
SCHEMA_VERSION = 2  # result files this add-on reads
DEFAULT_HEIGHT_M = 1.70  # the people's standing height unless the user gives one (inference's --height default)
FOCAL_MM_RANGE = (8.0, 1200.0)  # the focal lengths (35 mm equivalent) --focal-mm takes (inference's lens.EQUIVALENT_MM)


class RunnerError(Exception):
    """A failure to show the user: ``code`` for programs, ``message`` says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Event:
    kind: str  # progress | result | error | start | done
    data: dict = field(default_factory=dict)


def bundled_version() -> str:
    """Version of the inference package shipped with this add-on."""
    init = PACKAGE_DIR / "inference" / "__init__.py"
    for line in init.read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RunnerError("broken_addon", f"{init} has no version; reinstall the add-on.")


def find_python(preferred: str = "", venv_dir: str | os.PathLike | None = None) -> str:
    """The interpreter that runs inference: the preference, $HUMAN_RECON_PYTHON,
    or the environment the add-on set up. Raises ``no_interpreter`` if none."""
    if preferred:  # an explicit choice is used or reported, never silently replaced
        if Path(preferred).is_file() and os.access(preferred, os.X_OK):
            return preferred
        raise RunnerError(
            "no_interpreter",
            f"The Python interpreter {preferred} does not exist; fix the path in Human Recon's preferences.",
        )
    candidates = [os.environ.get("HUMAN_RECON_PYTHON", "")]
    if venv_dir:
        v = Path(venv_dir)
        candidates.append(str(venv_python(v)))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise RunnerError(
        "no_interpreter",
        "No Python environment for Human Recon: open Preferences > Add-ons > Human Recon and "
        "click 'Set up environment' (or set the interpreter path).",
    )


WORKER_IDLE_EXIT_S = 600  # a warm worker quits after this long without a job: its models hold ~1.6 GB
# A job is not given to a worker this close to quitting on its own.
WORKER_IDLE_MARGIN_S = 30


class _Child:
    """A child process running ``python -m inference ARGS`` with the bundled package on its
    path. Its stdout's JSON lines go to the job it serves (``job``), and the job learns when the
    child ends; its stderr's last lines are kept for messages."""

    def __init__(self, python: str, args: list[str], env: dict[str, str] | None, job: "InferenceRun | None" = None,
                 keep_stdin: bool = False) -> None:  # fmt: skip
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = str(PACKAGE_DIR) + os.pathsep + child_env.get("PYTHONPATH", "")
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "inference", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                env=child_env,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            raise RunnerError(
                "bad_interpreter", f"Cannot start {python} ({exc.strerror}); fix the interpreter in the preferences."
            ) from None
        self.job = job
        self.stderr: list[str] = []
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._ended = False
        self._served = 0
        self.loaded = 0  # times a worker has loaded models ahead of a job
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, job: "InferenceRun", args: list[str]) -> None:
        """Give a worker (``serve``) a job: its events go to ``job`` until it is finished."""
        with self._lock:
            self.job, pending, self._pending = job, self._pending, []
            ended = self._ended
            if self._served:
                self.stderr.clear()  # an earlier job's error lines are not this one's
            self._served += 1
        for ev in pending:  # what a child that is no worker said before it ended (a wrong interpreter)
            job._put(ev)
        if ended:
            job._put(Event("exited", {"code": self.proc.returncode}))
            return
        self._write({"argv": args})

    def _write(self, message: dict) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError:  # the child has ended: a job hears so from the stdout reader
            pass

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
                kind = msg.pop("event")
            except (ValueError, KeyError, AttributeError, TypeError):
                kind, msg = "garbage", {"line": line[:200]}
            if kind in ("ready", "loaded"):  # a worker's greeting; models loaded ahead of a job
                self.loaded += kind == "loaded" and bool(msg.get("ok"))
                continue
            with self._lock:
                job = self.job
                if job is None:  # kept for the job about to be sent
                    self._pending.append(Event(kind, msg))
                    continue
                if kind == "finished":  # the worker's job is over; it waits for the next
                    self.job, self.last_used = None, time.monotonic()
            job._put(Event(kind, msg))
        self.proc.wait()
        self._stderr_thread.join(timeout=5)  # the error message is in the last stderr lines
        with self._lock:
            self._ended = True
            job = self.job
        if job is not None:
            job._put(Event("exited", {"code": self.proc.returncode}))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())
            del self.stderr[:-50]

    def stop(self) -> None:
        """End the child: SIGTERM (it removes its temporary files), then kill."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_worker: dict = {"child": None, "key": None}


def _warm_worker(python: str, env: dict[str, str] | None) -> _Child | None:
    """The warm worker for ``python`` and ``env``, started if there is none, it has ended or it is
    about to quit on its own; None while it is busy with another job."""
    env = dict(os.environ if env is None else env)
    key = (python, tuple(sorted((k, v) for k, v in env.items() if k.startswith("HUMAN_RECON_") or k == "PYTHONPATH")))
    child: _Child | None = _worker["child"]
    if child is not None and child.alive:
        if child.job is not None:  # never stopped under a job
            return None
        fresh = time.monotonic() - child.last_used < WORKER_IDLE_EXIT_S - WORKER_IDLE_MARGIN_S
        if fresh and _worker["key"] == key:
            return child
    stop_worker()
    child = _Child(python, ["serve", "--idle-exit", str(WORKER_IDLE_EXIT_S)], env, keep_stdin=True)
    _worker.update(child=child, key=key)
    return child


def preload(python: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """Start the warm worker, if needed, and have it load the models a job of ``args`` (a command
    line as ``reconstruct_args`` gives) will use, while the user is still choosing: the first run
    then waits for less (unless its options turn out to be others). Nothing while it is busy."""
    child = _warm_worker(python, env)
    if child is not None:
        child._write({"load": args})


def stop_worker() -> None:
    """End the warm worker, if any (the add-on is disabled; a cancel)."""
    child, _worker["child"] = _worker["child"], None
    if child is not None:
        child.stop()


def worker_pid() -> int | None:
    """The warm worker's process id while it runs."""
    child = _worker["child"]
    return child.proc.pid if child is not None and child.alive else None


def worker_preloaded() -> int:
    """How many times the warm worker has loaded models ahead of a job (``preload``)."""
    child = _worker["child"]
    return child.loaded if child is not None else 0


class InferenceRun:
    """One job of the inference package. ``poll()`` returns new events; ``cancel()`` ends it.

    ``warm``: the job goes to a warm worker (``python -m inference serve``) that keeps the models
    loaded between jobs, started with the first job (a photo then takes under a second of work
    instead of 5-7 s); otherwise, or while the worker is busy, a process of its own runs it."""

    def __init__(self, python: str, args: list[str], env: dict[str, str] | None = None, warm: bool = False) -> None:
        self.expected_version = bundled_version()
        self._events: queue.Queue[Event] = queue.Queue()
        self._finished = threading.Event()
        self.result_path: str | None = None
        self.error: RunnerError | None = None
        self.exit_code: int | None = None
        self.fraction = 0.0
        self.stage = "starting"
        self.cancelled = False
        child = _warm_worker(python, env) if warm else None
        if child is not None:
            self._child = child
            child.send(self, args)
        else:
            self._child = _Child(python, [*args, "--json-progress"], env, job=self)
        self.proc = self._child.proc

    def _put(self, ev: Event) -> None:
        """An event from the child; ``finished`` (a worker's end of the job) and ``exited`` (the
        child has ended) end the job, after the events before them."""
        if ev.kind not in ("finished", "exited"):
            self._events.put(ev)
            return
        if self.exit_code is None:
            self.exit_code = int(ev.data["exit_code"] if ev.kind == "finished" else ev.data["code"])
        self._finished.set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set() and self._events.empty()

    def poll(self) -> list[Event]:
        """Drain new events, updating ``fraction``, ``stage``, ``result_path`` and ``error``."""
        out = []
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            self._apply(ev)
            out.append(ev)
        if self._finished.is_set() and self._events.empty() and self.result_path is None and self.error is None:
            self.error = self._exit_error()
        return out

    def _apply(self, ev: Event) -> None:
        if ev.kind == "start":
            got = str(ev.data.get("version"))
            if got != self.expected_version or ev.data.get("schema_version") != SCHEMA_VERSION:
                self.error = RunnerError(
                    "version_mismatch",
                    f"The inference package is version {got} but this add-on needs {self.expected_version}; "
                    "reinstall the add-on or click 'Set up environment' again.",
                )
                self.cancel()
        elif ev.kind == "progress":
            self.fraction = float(ev.data.get("fraction", self.fraction))
            self.stage = str(ev.data.get("stage", self.stage))
        elif ev.kind == "result":
            self.result_path = str(ev.data["path"])
            self.fraction = 1.0
        elif ev.kind == "error" and self.error is None:
            message = str(ev.data.get("message", "failed"))
            if ev.data.get("code") == "internal" and "No module named" in message:  # torch or MediaPipe missing
                self.error = _broken_environment(message[message.find("No module named") :].split(")")[0])
            else:
                self.error = RunnerError(str(ev.data.get("code", "error")), message)
        elif ev.kind == "garbage" and self.error is None:
            self.error = RunnerError(
                "bad_output",
                f"The inference process printed unexpected output ({ev.data['line']!r}); "
                "check the interpreter in the preferences.",
            )
            self.cancel()

    def _exit_error(self) -> RunnerError:
        if self.cancelled:
            return RunnerError("cancelled", "Cancelled; the scene was left as it was.")
        code = self.exit_code
        last = next((line for line in reversed(self._child.stderr) if line.strip()), "")
        if "No module named" in last or "ModuleNotFoundError" in last:
            return _broken_environment(last.strip())
        detail = f": {last.strip()[:200]}" if last else ""
        return RunnerError(
            "crashed", f"The inference process stopped unexpectedly (exit code {code}){detail}; try again."
        )

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job ends (headless ``execute()``)."""
        if not self._finished.wait(timeout):
            self.cancel()
            self._finished.wait(10)

    def cancel(self) -> None:
        """End the job while it runs: its process, warm worker or not, gets SIGTERM (it removes
        its temporary files), then is killed; a later warm job starts a new worker."""
        if self._child is _worker["child"]:
            if self._finished.is_set():  # the job is over: the worker waits for the next
                return
            _worker["child"] = None
        if self._child.alive:
            self.cancelled = True
        self._child.stop()


def _broken_environment(detail: str) -> RunnerError:
    return RunnerError(
        "broken_environment",
        f"The inference environment is incomplete ({detail}); click 'Set up environment' in Human Recon's "
        "preferences.",
    )


def reconstruct_args(image: str, output: str, quality: str = "balanced", body_model: str = "anny",
                     cache_dir: str = "", people: str = "all", height: float = DEFAULT_HEIGHT_M,
                     hands: bool = True, focal_mm: float | None = None) -> list[str]:  # fmt: skip
    """``people``: "all", "largest" or a count, as ``--people`` takes it; ``height``: every
    person's standing height, metres (``--height``); ``hands``: fit the fingers (``--hands``);
    ``focal_mm``: the lens's 35 mm equivalent (``--focal-mm``; None: the photo's EXIF, else a guess)."""
    args = ["reconstruct", image, "--output", output, "--overwrite", "--quality", quality, "--body-model", body_model,
            "--people", people, "--height", f"{height:.3f}", "--hands", "on" if hands else "off"]  # fmt: skip
    if focal_mm:
        args += ["--focal-mm", f"{focal_mm:g}"]
    if cache_dir:
        args += ["--cache-dir", cache_dir]
    return args


def sequence_args(clip: str, output: str, start: int = 0, end: int | None = None, step: int = 1,
                  quality: str = "balanced", body_model: str = "anny", cache_dir: str = "",
                  people: str = "all", track_model: str = "heavy", height: float = DEFAULT_HEIGHT_M,
                  hands: bool = True, focal_mm: float | None = None) -> list[str]:  # fmt: skip
    """``track_model``: the pose model that follows people from frame to frame (``--track-model``);
    the rest as ``reconstruct_args``."""
    args = ["sequence", clip, "--output", output, "--overwrite", "--start", str(start), "--step", str(step),
            "--quality", quality, "--body-model", body_model, "--people", people,
            "--track-model", track_model, "--height", f"{height:.3f}", "--hands", "on" if hands else "off"]  # fmt: skip
    if focal_mm:
        args += ["--focal-mm", f"{focal_mm:g}"]
    if end is not None:
        args += ["--end", str(end)]
    if cache_dir:
        args += ["--cache-dir", cache_dir]
    return args


# --- the inference environment -------------------------------------------------------------

STAMP = "human_recon_requirements.txt"  # the requirements an environment was made from
# Packages in a fresh environment (torch, its CUDA libraries, mediapipe, anny, ...): the set-up's
# progress while pip collects them. A guess: the bar stops short of the end until pip is done.
EXPECTED_PACKAGES = 70
OFFLINE_SIGNS = ("Failed to establish", "Temporary failure", "Network is unreachable", "Could not fetch URL",
                 "NewConnectionError", "No matching distribution found for torch")  # fmt: skip


def venv_python(venv_dir: str | os.PathLike) -> Path:
    """The interpreter of a virtual environment, on Windows and elsewhere."""
    v = Path(venv_dir)
    return v / "Scripts" / "python.exe" if os.name == "nt" else v / "bin" / "python"


def base_python() -> str:
    """The Python that makes the environment: the one running Blender (``sys.executable``:
    CPython 3.11 in Blender 4.2-5.0, 3.13 in 5.1-5.3), so no other Python is needed."""
    exe = sys.executable
    if not exe or not Path(exe).is_file() or sys.version_info[:2] < (3, 11):
        raise RunnerError(
            "no_base_python",
            "Blender's own Python was not found; set an interpreter that has the packages in requirements.txt.",
        )
    return exe


def environment_outdated(venv_dir: str | os.PathLike, requirements: str | os.PathLike) -> bool:
    """True when the environment exists but was made from other requirements than this add-on's."""
    stamp = Path(venv_dir) / STAMP
    if not venv_python(venv_dir).exists():
        return False
    try:
        return stamp.read_bytes() != Path(requirements).read_bytes()
    except OSError:
        return True


class SetupRun:
    """Makes the inference environment in the background: a virtual environment from Blender's
    own Python, then pip with the bundled requirements. ``poll()`` updates ``fraction`` and
    ``status`` from pip's output; ``cancel()`` stops pip and removes the half-made environment;
    ``python`` is the environment's interpreter once it is done, ``error`` says what failed."""

    def __init__(self, venv_dir: str | os.PathLike, requirements: str | os.PathLike,
                 base: str | None = None, min_free_bytes: int = 9 * 1024**3) -> None:  # fmt: skip
        self.venv = Path(venv_dir)
        self.requirements = Path(requirements)
        if not self.requirements.is_file():
            raise RunnerError("broken_addon", f"{self.requirements} is missing; reinstall the add-on.")
        self.base = base or base_python()
        probe = self.venv.parent if self.venv.parent.exists() else Path.home()
        free = shutil.disk_usage(probe).free
        if free < min_free_bytes:
            raise RunnerError(
                "no_space",
                f"Setting up needs about {min_free_bytes / 1024**3:.0f} GB free in {probe}, "
                f"{free / 1024**3:.1f} GB is left; free some space.",
            )
        self.fraction = 0.0
        self.status = "Starting"
        self.python: str | None = None
        self.error: RunnerError | None = None
        self.cancelled = False
        self._existed = self.venv.exists()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._collected = 0
        self._tail: list[str] = []  # the last lines the running command printed
        threading.Thread(target=self._work, daemon=True).start()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def step(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the set-up to end; True once it has."""
        return self._done.wait(seconds)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the set-up ends (headless ``execute()``); cancel it after ``timeout``."""
        if not self._done.wait(timeout):
            self.cancel()
            self._done.wait(30)

    def cancel(self) -> None:
        """Stop pip and remove what was made; ``error`` becomes ``cancelled``."""
        with self._lock:
            self.cancelled = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
        self._done.wait(30)

    def _run(self, cmd: list[str], on_line) -> int:
        with self._lock:
            if self.cancelled:
                return -1
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
                                          errors="replace")  # fmt: skip
        tail: list[str] = []
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip()
            if line:
                tail = (tail + [line])[-40:]
                on_line(line)
        self._tail = tail
        return self._proc.wait()

    def _work(self) -> None:
        try:
            self.status = "Making the environment"
            if self._run([self.base, "-m", "venv", str(self.venv)], lambda line: None) != 0:
                raise self._failure(f"Could not make an environment in {self.venv}; choose another folder.")
            self.fraction = 0.05
            py = str(venv_python(self.venv))
            cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
                   "-r", str(self.requirements)]  # fmt: skip
            if self._run(cmd, self._on_pip_line) != 0:
                raise self._pip_failure()
            shutil.copyfile(self.requirements, self.venv / STAMP)
            self.python, self.fraction, self.status = py, 1.0, "Ready"
        except RunnerError as err:
            self.error = err
        except OSError as exc:
            self.error = RunnerError("setup_failed", f"Setting up failed ({exc.strerror}); try another folder.")
        finally:
            if self.error is not None and not self._existed:
                shutil.rmtree(self.venv, ignore_errors=True)
            self._done.set()

    def _failure(self, message: str) -> RunnerError:
        if self.cancelled:
            return RunnerError("cancelled", "Set-up cancelled; the half-made environment was removed.")
        return RunnerError("setup_failed", message)

    def _pip_failure(self) -> RunnerError:
        if self.cancelled:
            return self._failure("")
        text = "\n".join(self._tail)
        if any(s in text for s in OFFLINE_SIGNS):
            return RunnerError("offline", "Cannot reach pypi.org to download the packages; connect and try again.")
        if "No space left" in text:
            return RunnerError("no_space", "The disk filled up while installing; free some space and try again.")
        last = next((line for line in reversed(text.splitlines()) if line.startswith("ERROR")), "")
        return RunnerError("setup_failed", f"pip could not install the requirements ({last[:200]}); try again.")

    def _on_pip_line(self, line: str) -> None:
        """Progress from pip's output: packages collected, then installed."""
        if line.startswith("Collecting "):
            self._collected += 1
            self.fraction = 0.05 + 0.6 * min(1.0, self._collected / EXPECTED_PACKAGES)
            self.status = f"Collecting {line.split()[1]}"
        elif line.lstrip().startswith("Downloading "):
            parts = line.split()
            size = " ".join(parts[2:]).strip("()") if len(parts) > 2 else ""
            self.status = f"Downloading {parts[1].split('/')[-1][:60]} {size}".strip()
        elif line.startswith("Installing collected packages"):
            self.fraction = max(self.fraction, 0.7)
            self.status = "Installing the packages (a few minutes)"
        elif line.startswith("Successfully installed"):
            self.fraction, self.status = 0.98, "Installed"


def setup_environment(venv_dir: str | os.PathLike, requirements: str | os.PathLike,
                      base_python: str | None = None, min_free_bytes: int = 9 * 1024**3) -> str:
    """Make the environment and wait for it (headless, scripts); returns its interpreter or
    raises RunnerError with a clear message. A failed set-up removes what it made."""
    run = SetupRun(venv_dir, requirements, base_python, min_free_bytes)
    run.wait()
    if run.error is not None:
        raise run.error
    assert run.python is not None
    return run.python
