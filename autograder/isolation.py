"""The grader's side of the trust boundary: sessions that run submission code elsewhere.

A hidden test never imports a submission. It asks a `Session` for proxies
(``session.module("w01_attention").softmax(x)``); each proxy call is a request to a child
process forked for that test, and what comes back is data read with
``torch.load(weights_only=True)``. Objects that are not data (a module, an optimizer)
stay in the child and come back as `Remote` handles with the same call syntax.

`InProcessSession` gives the same interface without a child (``--isolation none``): for
debugging only, never for an authoritative grade.
"""

from __future__ import annotations

import io
import itertools
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from . import _host
from ._host import NDARRAY_KEY, REF_KEY, recv_frame, send_frame

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SubmissionError(Exception):
    """The submission raised, crashed or is missing something; ``traceback`` is its own."""

    status = "error"

    def __init__(self, message: str, traceback: str = "", exc_type: str = ""):
        super().__init__(message)
        self.traceback = traceback
        self.exc_type = exc_type


class SubmissionTimeout(SubmissionError):
    status = "timeout"


class SubmissionCrash(SubmissionError):
    pass


class Remote:
    """A handle on an object that lives with the submission. Attribute reads and calls are
    forwarded; results come back as data or as further handles."""

    __slots__ = ("_session", "_ref", "_label", "_kind")

    def __init__(self, session, ref, label: str, kind: str = ""):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_kind", kind)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        missing = (self._label, name) if self._kind == "module" else None
        return self._session._request(("getattr", self._ref, name), f"{self._label}.{name}", missing)

    def __setattr__(self, name: str, value) -> None:
        self._session._request(("setattr", self._ref, name, value), f"{self._label}.{name} = …")

    def __call__(self, *args, **kwargs):
        return self._session._request(("call", self._ref, args, kwargs), f"{self._label}(…)")

    def call(self, method: str, *args, **kwargs):
        """``remote.call("load_state_dict", sd)``: one round trip for a method call."""
        request = ("callmethod", self._ref, method, args, kwargs)
        return self._session._request(request, f"{self._label}.{method}(…)")

    def __repr__(self) -> str:
        return f"<remote {self._label}>"


def _to_wire(value):
    """Replace Remote handles in call arguments with the reference ids the child knows."""
    if isinstance(value, Remote):
        return value._ref
    if type(value) in (list, tuple):
        return type(value)(_to_wire(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return value


class _SessionBase:
    week: str
    module_name: str

    def _wrap(self, value, label: str):
        if isinstance(value, dict):
            if REF_KEY in value and isinstance(value[REF_KEY], int):
                kind = str(value.get("type", ""))
                # Name an instance by its class ("SelfAttentionHead"), anything else by its path.
                if kind not in (
                    "module",
                    "function",
                    "type",
                    "method",
                    "builtin_function_or_method",
                    "ABCMeta",
                ):
                    label = kind
                return Remote(self, {REF_KEY: value[REF_KEY]}, label, kind)
            if NDARRAY_KEY in value:
                return value[NDARRAY_KEY].numpy()
            return {k: self._wrap(v, label) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self._wrap(v, label) for v in value)
        return value

    def _unwrap_reply(self, reply, label: str, missing: tuple[str, str] | None = None):
        if not isinstance(reply, dict) or not ({"ok", "error"} & reply.keys()):
            raise SubmissionCrash(f"{label}: the submission process sent a malformed reply")
        if "error" in reply:
            err = reply["error"] or {}
            message = f"{err.get('type', 'Error')}: {err.get('message', '')}"
            if err.get("type") == "AttributeError" and missing is not None:
                module, name = missing
                message = (
                    f"`{name}` is missing from your {module}.py "
                    f"(AttributeError: {err.get('message', '')}); keep the names and signatures of the stub"
                )
            elif err.get("type") == "NotImplementedError":
                raise SubmissionError(
                    f"{label} is not implemented yet ({err.get('message', '')})",
                    err.get("traceback", ""),
                    "NotImplementedError",
                )
            raise SubmissionError(f"{label} raised {message}", err.get("traceback", ""), err.get("type", ""))
        return self._wrap(reply["ok"], label)

    # -- public API -------------------------------------------------------------------
    import_failures: dict | None = None  # shared by the sessions of one grading run

    def module(self, name: str | None = None) -> Remote:
        """The submission's module ``name`` (default: the week's). An import that hangs or
        kills the process is not retried by every test: later ones get the first failure."""
        name = name or self.module_name
        failures = self.import_failures if self.import_failures is not None else {}
        if name in failures:
            raise failures[name]
        try:
            return self._request(("import", name), name)
        except (SubmissionTimeout, SubmissionCrash) as exc:
            failures[name] = exc
            raise

    def run(self, fn, *args, **kwargs):
        """Run a trusted, importable function beside the submission (e.g. a training loop)."""
        request = ("run", fn.__module__, fn.__qualname__, args, kwargs)
        return self._request(request, f"{fn.__name__}(…)")

    def source(self, name: str | None = None) -> str:
        """The text of a submission module, read as a file: never executed here."""
        name = name or self.module_name
        path = Path(self.submission_dir) / f"{name}.py"
        if not path.exists():
            path = Path(self.submission_dir) / name / "__init__.py"
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SubmissionError(f"cannot read {path.name}: {exc}") from exc


class InProcessSession(_SessionBase):
    """Debugging mode: the submission runs in this process (nothing is isolated)."""

    _counter = itertools.count()

    def __init__(self, submission_dir, week: str, module_name: str, reference: dict[str, str]):
        self.submission_dir = str(submission_dir)
        self.week, self.module_name = week, module_name
        self._package = f"_submission_{next(self._counter)}"
        self._host = None
        self._reference = reference

    def _request(self, request, label: str, missing=None):
        if self._host is None:
            try:
                self._host = _host.Host(self._package, self.submission_dir, self._reference)
            except BaseException as exc:  # noqa: BLE001
                raise SubmissionError(f"setting up the submission failed: {exc}") from exc
        # Copy the arguments as the isolated path does, so in-place edits stay on this side.
        request = pickle.loads(pickle.dumps(_to_wire(request)))
        reply = self._host.handle(request)
        # The same data-only round trip as the isolated path, so both modes agree.
        reply = torch.load(io.BytesIO(_host.dump_data(reply)), weights_only=True)
        return self._unwrap_reply(reply, label, missing)

    def close(self) -> None:
        for name in [m for m in sys.modules if m == self._package or m.startswith(self._package + ".")]:
            del sys.modules[name]
        self._host = None


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


class Zygote:
    """A `python -I` process that has imported torch and forks one child per session."""

    def __init__(self, env: dict[str, str] | None = None, user: str | None = None):
        self._lock = threading.Lock()
        parent, child = socket.socketpair()
        self.workroot = Path(tempfile.mkdtemp(prefix="grader-"))
        self.user = user
        if user:  # children then write only to their own directories, owned by that user
            shutil.chown(self.workroot, user)
        clean_env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workroot),
            "TMPDIR": str(self.workroot),
            "LANG": "C.UTF-8",
            # One thread per child: the tests' models are tiny, and the grader works beside them.
            # A driver that trains something larger may raise it with torch.set_num_threads.
            "OMP_NUM_THREADS": "1",
        }
        clean_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(_host.__file__)), str(child.fileno()), str(PROJECT_ROOT)],
            pass_fds=(child.fileno(),),
            env=clean_env,
            cwd=self.workroot,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            # The sandbox user's own group only: not root's group or supplementary groups.
            user=user,
            group=_primary_group(user) if user else None,
            extra_groups=[] if user else None,
        )
        child.close()
        self.control = parent
        self._ready = False

    def _wait_ready(self) -> None:
        # Started early (while pytest collects) and awaited only here: the two imports of
        # torch overlap instead of adding up.
        self.control.settimeout(120)
        if recv_frame(self.control) != b"ready":
            raise RuntimeError("the grading zygote did not start")
        self.control.settimeout(30)
        self._ready = True

    def spawn(self, spec: dict) -> tuple[int, socket.socket]:
        mine, theirs = socket.socketpair()
        with self._lock:
            if not self._ready:
                self._wait_ready()
            socket.send_fds(self.control, [pickle.dumps(spec)], [theirs.fileno()])
            (pid,) = struct.unpack("!q", recv_frame(self.control))
        theirs.close()
        return pid, mine

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            shutil.rmtree(self.workroot, ignore_errors=True)


class IsolatedSession(_SessionBase):
    """One child process per session (one per test), forked lazily on first use."""

    def __init__(
        self,
        zygote: Zygote,
        submission_dir,
        week: str,
        module_name: str,
        reference: dict[str, str],
        limit: float,
        memory_bytes: int = 4 << 30,
    ):
        self.zygote = zygote
        self.submission_dir = str(Path(submission_dir).resolve())
        self.week, self.module_name = week, module_name
        self.reference = reference
        self.limit = limit  # seconds of wall clock, counted from the child's start
        self.deadline = float("inf")
        self.memory_bytes = memory_bytes
        self.pid = None
        self.conn = None
        self.workdir = None
        self.dead = False

    def _start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="child-", dir=self.zygote.workroot))
        if self.zygote.user:
            shutil.chown(self.workdir, self.zygote.user)
        cpu = max(5, int(self.limit) * 2 + 5)
        spec = {
            "package": "submission",
            "submission_dir": self.submission_dir,
            "reference": self.reference,
            "workdir": str(self.workdir),
            "memory_bytes": self.memory_bytes,
            "cpu_seconds": cpu,
            "max_processes": 512 if self.zygote.user else None,
        }
        self.pid, self.conn = self.zygote.spawn(spec)
        # Waiting for the zygote to finish importing torch is the grader's time, not the test's.
        self.deadline = time.monotonic() + self.limit

    def _request(self, request, label: str, missing=None):
        if self.dead:
            raise SubmissionCrash(f"{label}: the submission process already died earlier in this test")
        if self.conn is None:
            self._start()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._kill()
            raise SubmissionTimeout(f"{label}: out of time (the test's time limit was used up)")
        try:
            self.conn.settimeout(remaining)
            send_frame(self.conn, pickle.dumps(_to_wire(request)))
            payload = recv_frame(self.conn)
        except TimeoutError:
            self._kill()
            raise SubmissionTimeout(
                f"{label} did not return in time: an infinite loop, or far too slow?"
            ) from None
        except (EOFError, OSError) as exc:
            self._kill()
            raise SubmissionCrash(
                f"{label}: the submission process exited or crashed during the call "
                f"(os._exit, a segfault, or the memory limit?) [{exc}]"
            ) from None
        try:
            reply = torch.load(io.BytesIO(payload), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is the child's fault
            self._kill()
            raise SubmissionCrash(
                f"{label}: the submission sent back something that is not data ({exc})"
            ) from None
        return self._unwrap_reply(reply, label, missing)

    def _kill(self) -> None:
        self.dead = True
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.conn is not None:
            self.conn.close()

    def close(self) -> None:
        if self.conn is not None and not self.dead:
            self._kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
