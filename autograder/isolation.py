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

import itertools
import os
import pickle
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import child_side
from .child_side import NDARRAY_KEY, REF_KEY
from .sandbox.cgroups import Groups
from .sandbox.wire import ReplyError, decode_reply, dump_data, recv_frame, send_frame

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
        """The text of a submission module, read as a file (never executed here, no link
        followed, nothing but a regular file of at most 1 MiB opened)."""
        name = name or self.module_name
        base = Path(self.submission_dir)
        for parts in ((f"{name}.py",), (name, "__init__.py")):
            try:
                return open_regular(base, *parts).decode("utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SubmissionError(f"cannot read {'/'.join(parts)}: {exc}") from None
        raise SubmissionError(f"cannot read {name}.py: there is no such file in your submission")


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
                self._host = child_side.Host(self._package, self.submission_dir, self._reference)
            except BaseException as exc:  # noqa: BLE001
                raise SubmissionError(f"setting up the submission failed: {exc}") from exc
        # Copy the arguments as the isolated path does, so in-place edits stay on this side.
        request = pickle.loads(pickle.dumps(_to_wire(request)))
        reply = self._host.handle(request)
        # The same data-only round trip as the isolated path, so both modes agree.
        reply = decode_reply(dump_data(reply))
        return self._unwrap_reply(reply, label, missing)

    def close(self) -> None:
        for name in [m for m in sys.modules if m == self._package or m.startswith(self._package + ".")]:
            del sys.modules[name]
        self._host = None


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged user submission processes run as (the zygote stays root)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def lookup(cls, name: str) -> SandboxUser:
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise GraderError(f"there is no user {name!r} to run submissions as") from None
        if entry.pw_uid == 0:
            raise GraderError(f"user {name!r} is root: submissions must run unprivileged")
        if os.geteuid() != 0:
            raise GraderError("running submissions as another user needs root")
        return cls(name, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class Limits:
    """Per test, across all of the test's processes where a control group holds them."""

    memory_bytes: int = 4 << 30
    processes: int = 128
    file_bytes: int = 256 << 20  # largest file a submission may write


class GraderError(RuntimeError):
    """Grading itself failed (not the submission's fault): the report says so."""


class ZygoteFailure(RuntimeError):
    """The zygote died, stopped or answered nonsense."""


SPAWN_TIMEOUT = 10.0  # a pre-forked child is handed over in milliseconds


def kill_user(user: SandboxUser) -> None:
    """Kill every process of ``user`` (in this PID namespace) at once: a process running as
    that user sends SIGKILL to -1, which the kernel delivers to all of them atomically with
    respect to fork, so nothing can multiply its way out."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
            if os.getuid() == user.uid != 0:  # never as root: -1 would mean everyone
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


class Zygote:
    """A `python -I` process that has imported torch and forks one child per session."""

    def __init__(self, workroot: Path, env: dict[str, str] | None = None):
        parent, child = socket.socketpair()
        clean_env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(workroot),
            "TMPDIR": str(workroot),
            "LANG": "C.UTF-8",
            # One thread per child: the tests' models are tiny, and the grader works beside them.
            # A driver that trains something larger may raise it with torch.set_num_threads.
            "OMP_NUM_THREADS": "1",
        }
        clean_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(child_side.__file__)), str(child.fileno()), str(PROJECT_ROOT)],
            pass_fds=(child.fileno(),),
            env=clean_env,
            cwd=workroot,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.close()
        self.control = parent
        self._ready = False

    def _wait_ready(self) -> None:
        # Started early (while pytest collects) and awaited only here: the two imports of
        # torch overlap instead of adding up.
        try:
            self.control.settimeout(180)
            if recv_frame(self.control) != b"ready":
                raise ZygoteFailure("the grading zygote did not start")
        except (OSError, EOFError) as exc:
            raise ZygoteFailure(f"the grading zygote did not start ({exc})") from None
        self._ready = True

    def _stopped(self) -> bool:
        """Stopped (SIGSTOP) or a zombie: no answer would ever come, so none is waited for."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X")
        except (OSError, IndexError):
            return True

    def _ask(self, data: bytes, fds: list[int]) -> bytes:
        if not self._ready:
            self._wait_ready()
        if self._stopped():
            raise ZygoteFailure("the grading zygote was stopped or killed")
        try:
            socket.send_fds(self.control, [data], fds)
            return recv_frame(self.control, time.monotonic() + SPAWN_TIMEOUT, limit=64)
        except (OSError, EOFError, ValueError) as exc:
            state = "stopped or too slow" if isinstance(exc, TimeoutError) else "gone"
            raise ZygoteFailure(f"the grading zygote is {state} ({type(exc).__name__})") from None

    def spawn(self, spec: dict) -> tuple[int, socket.socket]:
        mine, theirs = socket.socketpair()
        try:
            (pid,) = struct.unpack("!q", self._ask(pickle.dumps(spec), [theirs.fileno()]))
        except struct.error:
            mine.close()
            raise ZygoteFailure("the grading zygote answered nonsense") from None
        except ZygoteFailure:
            mine.close()
            raise
        finally:
            theirs.close()
        return pid, mine

    def reap(self) -> None:
        if self._ask(b"reap", []) != b"reaped":
            raise ZygoteFailure("the grading zygote answered nonsense")

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(timeout=10)


class Spawner:
    """The grader's supply of submission processes for one grading run: a zygote (restarted
    when it dies or stops, which is reported as the grader's trouble, never the student's), the
    sandbox user, the run's control groups and the root of the per-test directories."""

    def __init__(
        self,
        user: SandboxUser | None = None,
        limits: Limits = Limits(),
        landlock: bool = True,
        cgroups: bool = True,
    ):
        self.user, self.limits, self.landlock = user, limits, landlock
        # The per-test directories' root belongs to the grader: a submission can enter its own
        # directory (0711 lets it through) but can neither list nor add nor swap entries here.
        self.workroot = Path(tempfile.mkdtemp(prefix="grader-"))
        self.workroot.chmod(0o711 if user else 0o700)
        self.groups = Groups.create() if cgroups else None
        self.restarts = 0
        self.zygote = Zygote(self.workroot)
        self._counter = itertools.count()

    def describe(self) -> dict:
        from .sandbox import landlock

        return {
            "user": self.user.name if self.user else None,
            "landlock_abi": landlock.abi_version() if self.landlock else 0,
            "cgroup": self.groups.version if self.groups else None,
            "memory_bytes": self.limits.memory_bytes,
            "processes": self.limits.processes,
            "file_bytes": self.limits.file_bytes,
            "limits_per": "test" if self.groups else "process",
            "zygote_restarts": self.restarts,
        }

    def _restart(self) -> None:
        self.zygote.close()
        self.restarts += 1
        self.zygote = Zygote(self.workroot)

    def spawn(self, cpu_seconds: int, submission: dict) -> Child:
        """A submission process for one test; ``submission`` names the package to load."""
        name = f"child-{next(self._counter)}"
        leaf = (
            self.groups.leaf(name, self.limits.memory_bytes, self.limits.processes) if self.groups else None
        )
        spec = {
            **submission,
            "workdir": str(self.workroot / name),
            "uid": self.user.uid if self.user else None,
            "gid": self.user.gid if self.user else None,
            "cgroup_procs": leaf.procs if leaf else [],
            "memory_bytes": self.limits.memory_bytes,
            "processes": self.limits.processes,
            "file_bytes": self.limits.file_bytes,
            "cpu_seconds": cpu_seconds,
            "landlock": self.landlock,
        }
        problem = None
        for _ in range(2):
            try:
                return Child(self, *self.zygote.spawn(spec), Path(spec["workdir"]), leaf)
            except ZygoteFailure as exc:
                problem = exc
                self._restart()
        if leaf:
            leaf.remove()
        raise GraderError(f"submission processes could not be started: {problem}")

    def end(self, child: Child) -> None:
        """Nothing of a finished test lives on: its group, its user's processes (atomically),
        its process group, and whatever was orphaned to the zygote."""
        if child.leaf:
            child.leaf.kill()
            child.leaf.remove()
        if self.user:
            kill_user(self.user)
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.zygote.reap()
        except ZygoteFailure:
            self._restart()  # killed or stopped by the test that just ended: a fresh one
        shutil.rmtree(child.workdir, ignore_errors=True)

    def close(self) -> None:
        self.zygote.close()
        if self.user:
            kill_user(self.user)
        if self.groups:
            self.groups.close()
        shutil.rmtree(self.workroot, ignore_errors=True)


@dataclass
class Child:
    spawner: Spawner
    pid: int
    conn: socket.socket
    workdir: Path
    leaf: object = None


def open_regular(base: Path, *parts: str, limit: int = 1 << 20) -> bytes:
    """The bytes of ``base/parts…`` if every part is a real directory or a regular file (no
    link followed, no FIFO or device opened, nothing larger than ``limit`` read)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(base, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        inner = os.open(parts[-1], flags, dir_fd=fd)
        os.close(fd)
        fd = inner
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{'/'.join(parts)} is not a regular file")
        if info.st_size > limit:
            raise OSError(f"{'/'.join(parts)} is larger than {limit:,} bytes")
        return os.read(fd, limit + 1)[:limit]
    finally:
        os.close(fd)


class IsolatedSession(_SessionBase):
    """One child process per session (one per test), forked lazily on first use."""

    def __init__(
        self,
        spawner: Spawner,
        submission_dir,
        week: str,
        module_name: str,
        reference: dict[str, str],
        limit: float,
    ):
        self.spawner = spawner
        self.submission_dir = str(Path(submission_dir).resolve())
        self.week, self.module_name = week, module_name
        self.reference = reference
        self.limit = limit  # seconds of wall clock, counted from the child's start
        self.deadline = float("inf")
        self.child: Child | None = None
        self.dead = False

    def _start(self) -> None:
        submission = {"package": "submission", "submission_dir": self.submission_dir}
        self.child = self.spawner.spawn(
            max(5, int(self.limit) * 2 + 5), {**submission, "reference": self.reference}
        )
        # Waiting for the zygote to finish importing torch is the grader's time, not the test's.
        self.deadline = time.monotonic() + self.limit

    def _exchange(self, request, label: str):
        conn = self.child.conn
        try:
            send_frame(conn, pickle.dumps(_to_wire(request)))
            payload = recv_frame(conn, self.deadline)
        except TimeoutError:
            self._kill()
            raise SubmissionTimeout(
                f"{label} did not return in time: an infinite loop, or far too slow?"
            ) from None
        except ReplyError as exc:
            self._kill()
            raise SubmissionCrash(f"{label}: {exc}") from None
        except (EOFError, OSError) as exc:
            self._kill()
            raise SubmissionCrash(
                f"{label}: the submission process exited or crashed during the call "
                f"(os._exit, a segfault, or the memory limit?) [{type(exc).__name__}]"
            ) from None
        try:
            return decode_reply(payload, self.deadline)
        except TimeoutError:
            self._kill()
            raise SubmissionTimeout(f"{label}: out of time while its reply was read") from None
        except ReplyError as exc:
            self._kill()
            raise SubmissionCrash(f"{label}: {exc}") from None

    def _request(self, request, label: str, missing=None):
        if self.dead:
            raise SubmissionCrash(f"{label}: the submission process already died earlier in this test")
        if self.child is None:
            self._start()
        if self.deadline - time.monotonic() <= 0:
            self._kill()
            raise SubmissionTimeout(f"{label}: out of time (the test's time limit was used up)")
        return self._unwrap_reply(self._exchange(request, label), label, missing)

    def _kill(self) -> None:
        self.dead = True
        if self.child is not None:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.child.conn.close()

    def close(self) -> None:
        if self.child is not None:
            self._kill()
            self.spawner.end(self.child)
