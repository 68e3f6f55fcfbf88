"""The submission side of the trust boundary: the code that runs *with* student code.

This file is the only part of the grader that ever executes a submission. It is run as a
script with `python -I` (neither the current directory nor PYTHON* variables on the import
path); the engine's root comes as an argument, and only the standard library, torch and the
engine's own `wire`, `messages` and `landlock` modules are imported from there.

Two ways in:

* ``python -I child_side.py FD ROOT``: a *zygote*. It imports torch once, then waits on the
  control socket FD. Each request hands it a fresh socket; it forks a child that enters the
  sandbox (`_enter_sandbox`), loads the submission, serves calls on that socket, and dies with
  the test. Forking from a process that already imported torch is what makes a child start in
  milliseconds. Under a sandbox user the zygote stays root and each child drops to that user,
  so no submission can signal or trace the zygote.
* ``Host`` used directly (``--isolation none``): the same object table, in-process.

What crosses back to the grader is *data only*: tensors, numbers, strings and
lists/tuples/dicts of them, serialised with ``torch.save`` and read by the grader with
`autograder.sandbox.wire.decode_reply` (``torch.load(weights_only=True)`` within bounds), which never
unpickles code. Anything else (a module, a function, an optimizer) stays here and is named by
a reference id.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    sys.path.append(sys.argv[2])  # the trusted engine root: `autograder.*`, drivers (op_run)

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402

from autograder.messages import MAX_MESSAGE, cut  # noqa: E402
from autograder.sandbox.wire import dump_data, recv_frame, send_frame  # noqa: E402

REF_KEY = "__remote_ref__"
NDARRAY_KEY = "__ndarray__"


# --------------------------------------------------------------------------- the object table
class Host:
    """Holds the submission's objects and answers requests about them.

    Requests are tuples from the trusted grader: ``(op, *args)``. Replies are
    ``{"ok": value}`` or ``{"error": {...}}`` where value is encoded data.
    """

    def __init__(self, package: str, submission_dir: str, reference: dict[str, str]):
        self.package = package
        self.objects: dict[int, object] = {}
        self.next_id = 1
        self._install_package(submission_dir, reference)
        project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        _PATH_ROOTS[:] = [(os.path.abspath(submission_dir), ""), (project, "<course>/")]

    # The submission directory becomes a package (named ``package``) without running its
    # __init__.py: ``from .w04_blocks import X`` inside a student module then resolves
    # to the same directory, or to the reference file where the grader says so.
    def _install_package(self, submission_dir: str, reference: dict[str, str]) -> None:
        pkg = types.ModuleType(self.package)
        pkg.__path__ = [submission_dir]
        pkg.__file__ = None
        sys.modules[self.package] = pkg
        for name, path in reference.items():
            full = f"{self.package}.{name}"
            spec = importlib.util.spec_from_file_location(full, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[full] = module
            spec.loader.exec_module(module)
            setattr(pkg, name, module)

    # -- encoding ---------------------------------------------------------------------
    def keep(self, obj) -> dict:
        ref = self.next_id
        self.next_id += 1
        self.objects[ref] = obj
        return {REF_KEY: ref, "type": type(obj).__qualname__}

    def encode(self, value, depth: int = 0):
        if depth > 20:
            return self.keep(value)
        if value is None or isinstance(value, (bool, int, float, str, bytes, complex)):
            return value
        if isinstance(value, torch.Tensor):
            if value.is_meta:
                return {"__meta_tensor__": list(value.shape), "dtype": str(value.dtype)}
            return value.detach().to("cpu").clone()
        if isinstance(value, (torch.dtype, torch.device)):
            return str(value)
        if isinstance(value, torch.Size):
            return tuple(value)
        if type(value) in (list, tuple):
            return type(value)(self.encode(v, depth + 1) for v in value)
        if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
            return {k: self.encode(v, depth + 1) for k, v in value.items()}
        if type(value).__module__ == "numpy" and hasattr(value, "shape"):
            return {NDARRAY_KEY: torch.from_numpy(value.copy())}
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            return value.item()
        if isinstance(value, types.GeneratorType):
            return self.encode(list(value), depth + 1)
        if isinstance(value, tuple):  # named tuples
            return tuple(self.encode(v, depth + 1) for v in value)
        return self.keep(value)

    def decode(self, value):
        if isinstance(value, dict):
            if REF_KEY in value:
                return self.objects[value[REF_KEY]]
            return {k: self.decode(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self.decode(v) for v in value)
        return value

    # -- operations -------------------------------------------------------------------
    def op_import(self, name: str):
        return importlib.import_module(f"{self.package}.{name}")

    def op_getattr(self, ref: dict, name: str):
        return getattr(self.decode(ref), name)

    def op_setattr(self, ref: dict, name: str, value):
        setattr(self.decode(ref), name, self.decode(value))

    def op_call(self, ref: dict, args, kwargs):
        return self.decode(ref)(*self.decode(args), **self.decode(kwargs))

    def op_callmethod(self, ref: dict, name: str, args, kwargs):
        return getattr(self.decode(ref), name)(*self.decode(args), **self.decode(kwargs))

    def op_run(self, module: str, qualname: str, args, kwargs):
        # A trusted driver (for example a training loop) run beside the submission.
        fn = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        return fn(*self.decode(args), **self.decode(kwargs))

    def op_release(self, ref: dict):
        self.objects.pop(ref[REF_KEY], None)

    def handle(self, request: tuple) -> dict:
        op, *args = request
        try:
            value = getattr(self, f"op_{op}")(*args)
            return {"ok": self.encode(value)}
        except BaseException as exc:  # noqa: BLE001 - everything a submission raises is reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"error": describe_exception(exc)}


def describe_exception(exc: BaseException) -> dict:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop this file's own frames: the student sees their code, not the grader's plumbing.
    frames = [
        f for f in frames if os.path.basename(f.filename) != "child_side.py" and "importlib" not in f.filename
    ]
    text = "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(type(exc), exc))
    message = shorten_paths(str(exc))
    return {
        "type": type(exc).__name__,
        "message": cut(message, MAX_MESSAGE),
        "traceback": cut(shorten_paths(text), MAX_MESSAGE, keep="tail"),  # its end is the useful part
    }


# Paths of the grading machine are nobody's business: installed packages and the standard
# library are named relative to their roots, the submission relative to itself.
_PATH_ROOTS: list[tuple[str, str]] = []
_SITE = re.compile(r"[^\s\"']*/(?:site|dist)-packages/")
_STDLIB = re.compile(r"[^\s\"']*/lib/python3\.\d+/")


def shorten_paths(text: str) -> str:
    for root, label in _PATH_ROOTS:
        text = text.replace(root.rstrip("/") + "/", label)
    return _STDLIB.sub("<python>/", _SITE.sub("<site-packages>/", text))


# --------------------------------------------------------------------------- the zygote
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 1, 4, 36


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                count += 1
        except OSError:
            pass
    return count


def _limit_resources(spec: dict) -> None:
    with open("/proc/self/statm") as f:
        vm_pages = int(f.read().split()[0])
    address_space = vm_pages * os.sysconf("SC_PAGE_SIZE") + spec["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu_seconds"], spec["cpu_seconds"] + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["file_bytes"], spec["file_bytes"]))
    # Counted per user: under the sandbox user every process of that user is this run's;
    # otherwise the user's other processes are counted in, and the budget goes on top.
    uid = spec["uid"] if spec.get("uid") is not None else os.getuid()
    if uid != 0:  # the kernel never applies it to uid 0 (control groups count there)
        nproc = spec["processes"] + (0 if spec.get("uid") is not None else _processes_of(uid))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _enter_sandbox(spec: dict) -> None:
    """Everything between the fork and the submission's first line, in this order: own
    session, own control group, own working directory (made here, inside a root the
    submission's user cannot write, so nothing can be swapped in), limits, the user, Landlock."""
    os.setsid()  # its own process group, so the grader can kill it and anything it spawns
    for procs in spec.get("cgroup_procs") or ():
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))
    workdir, uid, gid = spec["workdir"], spec.get("uid"), spec.get("gid")
    os.mkdir(workdir, 0o700)
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    if uid is not None:
        os.fchown(fd, uid, gid)
    os.fchdir(fd)
    os.close(fd)
    _limit_resources(spec)
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise RuntimeError("could not become the sandbox user")
    # Not dumpable: other processes of the same user cannot read this one's memory, files or
    # environment through /proc (a user switch does this already; without one it is explicit).
    _prctl(_PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file over the limit fails its write(), no kill
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/bin:/bin",
            "HOME": workdir,
            "TMPDIR": workdir,
            "MPLCONFIGDIR": workdir,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
        }
    )
    tempfile.tempdir = workdir
    from autograder.sandbox import landlock

    if os.geteuid() == 0:  # anyone else holds no capabilities to drop
        landlock.drop_capabilities()
    if spec.get("landlock", True):
        landlock.restrict([workdir])


def _serve_child(conn: socket.socket, spec: dict) -> None:
    _enter_sandbox(spec)
    try:
        host = Host(spec["package"], spec["submission_dir"], spec["reference"])
        setup_error = None
    except BaseException as exc:  # noqa: BLE001 - a broken reference is reported, not fatal
        host, setup_error = None, describe_exception(exc)
    while True:
        try:
            request = pickle.loads(recv_frame(conn))  # from the trusted grader only
        except EOFError:
            break
        reply = {"error": setup_error} if host is None else host.handle(request)
        try:
            payload = dump_data(reply)
        except BaseException as exc:  # noqa: BLE001 - e.g. an unserialisable value
            payload = dump_data({"error": describe_exception(exc)})
        send_frame(conn, payload)


def _fork_spare(control: socket.socket) -> tuple[int, socket.socket]:
    """Fork the next child ahead of time: it waits for its spec and socket, so handing it a
    test costs one message instead of a fork on the test's critical path."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        control.close()
        mine.close()
        code = 0
        try:
            data, fds, _flags, _addr = socket.recv_fds(theirs, 1 << 16, 1)
            if data and fds:
                _serve_child(socket.socket(fileno=fds[0]), pickle.loads(data))
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return pid, mine


def _children() -> set[int]:
    """This process's children (orphans of finished tests are re-parented here)."""
    me = os.getpid()
    found = set()
    try:
        for task in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{task}/children") as fh:
                found.update(int(p) for p in fh.read().split())
        return found
    except OSError:
        pass
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def reap(keep: int | None, timeout: float = 3.0) -> None:
    """Kill every child but ``keep``, again and again, until none is left: a process that
    forks while it is being killed leaves orphans, and they come back here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        victims = _children() - {keep}
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, os.WNOHANG)  # a zombie is collected here (unless SIGCHLD is ignored)
            except (ProcessLookupError, ChildProcessError):
                pass
        time.sleep(0.001)


def zygote_main(control_fd: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    # Orphans of a test (a double-forked daemon) become this process's children, to be reaped.
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    torch.manual_seed(0)  # every child starts from this state (seeding costs ms per child)
    control = socket.socket(fileno=control_fd)
    spare_pid, spare = _fork_spare(control)
    send_frame(control, b"ready")
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 1)
        except OSError:
            break
        if not data:
            break
        if data == b"reap":  # the end of a test: nothing but the spare may live on
            reap(keep=spare_pid)
            send_frame(control, b"reaped")
            continue
        if not fds:
            break
        socket.send_fds(spare, [data], fds)  # the spec goes on to the waiting child
        os.close(fds[0])
        spare.close()
        send_frame(control, struct.pack("!q", spare_pid))
        spare_pid, spare = _fork_spare(control)
    reap(keep=None)


if __name__ == "__main__":
    # Warm the imports children need, once, here: building any optimizer pulls in
    # torch._dynamo, which costs seconds per child otherwise. Nothing is computed before
    # forking, so no thread pool exists yet to be copied into a child.
    import torch._dynamo  # noqa: F401
    import torch.nn  # noqa: F401
    import torch.nn.functional  # noqa: F401
    import torch.optim  # noqa: F401

    zygote_main(int(sys.argv[1]))
