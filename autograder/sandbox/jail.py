"""The authoritative sandbox around one submission's grading: namespaces, private temporary space.

`run` (the grader's side, as root) prepares a work folder, starts this file as the first
process of new PID, mount, network, IPC and UTS namespaces (``unshare``), hands it the run's
settings on stdin (the seed never appears in a command line), and reads the report back once
the namespaces are gone. `main` (inside, still root) then:

1. builds a new root and pivots into it: the system's folders read-only (``/usr``, ``/etc``…),
   ``/dev``, a fresh ``/proc``, private, empty, size-capped tmpfs on ``/tmp``, ``/var/tmp`` and
   ``/dev/shm``, the interpreter's own folders read-only, and the work folder (engine,
   submission, report folder; root's) at ``/tmp/grading``. Nothing else of the host is there:
   no home folder, no checkout of the course and its solutions;
2. grades the weeks in turn, each a `course grade` run in this process with ``--sandbox-user``
   (submission processes drop to that user): before each week, the engine's ``solutions/`` is
   refilled with that week's references alone (from ``references/``, root's); after it, the
   temporary folders are wiped. Each week's report goes into a folder only root can enter.

When this process exits, the kernel kills every other process of the PID namespace and
``unshare`` returns only after they are gone; the tmpfs mounts disappear with the mount
namespace. Nothing of the run survives it: no process, no file in ``/tmp`` or ``/dev/shm``.

Only the standard library is imported before the engine is on the path: this file runs as a
script (``python -I``) from the engine copy that it then mounts.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

NAMESPACES = ("pid", "mount", "net", "ipc", "uts")
INSIDE = Path("/tmp/grading")
MS_BIND, MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 4096, 16384, 1 << 18, 2, 4
REPORT_LIMIT = 64 << 20


# --------------------------------------------------------------------------- outside
def command(work: Path) -> list[str]:
    """The command that starts the jail on the work folder ``work`` (as root)."""
    flags = ["--pid", "--fork", "--mount-proc", "--mount", "--net", "--ipc", "--uts", "--kill-child"]
    return [
        "unshare",
        *flags,
        "--",
        sys.executable,
        "-I",
        str(work / "engine" / "autograder" / "sandbox" / "jail.py"),
    ]


def available() -> str | None:
    """None when jails can be made here, else what is missing."""
    if os.geteuid() != 0:
        return "the authoritative grader needs root (on GitHub's runners: run it with sudo)"
    if not shutil.which("unshare"):
        return "`unshare` (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--net", "--ipc", "--uts", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot create namespaces: {probe.stderr.strip()[:300]}"
    return None


def read_report(path: Path) -> dict:
    """The report the jail wrote: a regular file owned by root, not a link, of bounded size."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise ValueError(f"{path.name} is not a regular file written by the grader")
        if info.st_size > REPORT_LIMIT:
            raise ValueError(f"{path.name} is larger than {REPORT_LIMIT:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return json.loads(fh.read(REPORT_LIMIT))
    finally:
        os.close(fd)


def read_report_if_any(path: Path) -> dict | None:
    try:
        return read_report(path)
    except (OSError, ValueError):
        return None


def run(work: Path, settings: dict, timeout: float) -> str:
    """Grade in a jail. ``work`` holds ``engine/``, ``submission/``, ``references/`` and an empty
    ``out/``, all root's; ``settings`` as `main` reads them. The jail writes one report per week,
    ``out/<week>.json`` (read them with `read_report`). Returns the jail's log."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    if "OMP_NUM_THREADS" in os.environ:
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    try:
        proc = subprocess.run(
            command(work),
            input=json.dumps({**settings, "work": str(work)}),
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        log = (proc.stdout + proc.stderr)[-20000:]
    except subprocess.TimeoutExpired:
        return f"grading ran past {timeout:.0f} s and was stopped"
    return f"the jail exited with {proc.returncode}\n{log}"


# --------------------------------------------------------------------------- inside
def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    args = [
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    ]
    if libc.mount(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


# What the jail's root holds from the host (read-only): the system's programs, libraries and
# configuration. Nothing else of the host is there: no home, no checkout of the course (with
# its solutions), no other user's files. The interpreter and its packages are bound in on top.
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
MS_RDONLY, MS_REMOUNT, MNT_DETACH = 1, 32, 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}


def _bind(source: str, target: str, writable: bool = False) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if not writable:
        _mount("", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_root(new: str, work_fd: int, python: dict[str, int], tmp_size: str) -> None:
    """A fresh root at ``new`` (a tmpfs): the system folders, /dev, a new /proc, /sys (for the
    grader's control groups), private /tmp, /var/tmp and /dev/shm, the interpreter's folders,
    and the work folder at /tmp/grading."""
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for name in SYSTEM:
        host = f"/{name}"
        if os.path.islink(host):
            os.symlink(os.readlink(host), f"{new}/{name}")
        elif os.path.isdir(host):
            os.mkdir(f"{new}/{name}", 0o755)
            _bind(host, f"{new}/{name}")
    for name in ("dev", "proc", "sys", "tmp", "var", "var/tmp"):
        os.mkdir(f"{new}/{name}", 0o755)
    _mount("/dev", f"{new}/dev", None, MS_BIND | MS_REC)
    _mount("tmpfs", f"{new}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{tmp_size}")
    _mount("proc", f"{new}/proc", "proc", MS_NOSUID | MS_NODEV)
    _mount("/sys", f"{new}/sys", None, MS_BIND | MS_REC)
    for name in ("tmp", "var/tmp"):
        _mount("tmpfs", f"{new}/{name}", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{tmp_size}")
    os.mkdir(f"{new}{INSIDE}", 0o711)
    _bind(f"/proc/self/fd/{work_fd}", f"{new}{INSIDE}", writable=True)
    for path, fd in sorted(python.items()):
        if any(path == f"/{s}" or path.startswith(f"/{s}/") for s in SYSTEM):
            continue  # already there
        target = f"{new}{path}"
        os.makedirs(target, mode=0o711, exist_ok=True)
        _bind(f"/proc/self/fd/{fd}", target)


def _pivot(new: str) -> None:
    """Make ``new`` the root and let go of the old one entirely."""
    libc = ctypes.CDLL(None, use_errno=True)
    number = _PIVOT_ROOT.get(os.uname().machine)
    os.mkdir(f"{new}/.old", 0o700)
    if number is None or libc.syscall(number, new.encode(), f"{new}/.old".encode()) != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    os.chdir("/")
    if libc.umount2(b"/.old", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "cannot detach the old root")
    os.rmdir("/.old")


def main() -> int:
    settings = json.loads(sys.stdin.read())
    sys.stdin.close()
    work = os.open(settings["work"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    python = {}
    for path in {sys.base_prefix, sys.prefix, *sys.path}:
        if (
            path
            and os.path.isdir(path)
            and not any(path.startswith(p + "/") for p in (sys.base_prefix, sys.prefix))
        ):
            python[path] = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    _mount("", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here is seen outside
    tmp_size = f"size={settings.get('tmpfs_bytes', 2 << 30)}"
    # Stage the new root on a tmpfs over /tmp (the host's /tmp is not needed any more: the
    # work folder is held open above).
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m")
    os.mkdir("/tmp/root", 0o755)
    _build_root("/tmp/root", work, python, tmp_size)
    _pivot("/tmp/root")
    for fd in [work, *python.values()]:
        os.close(fd)

    if settings.get("probe"):  # can the sandbox user run the interpreter and torch in here?
        import pwd

        entry = pwd.getpwnam(settings["user"])
        code = subprocess.run(
            [sys.executable, "-I", "-c", "import torch"],
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=[],
            capture_output=True,
        ).returncode
        with open(INSIDE / "out" / "report.json", "w") as fh:
            json.dump({"ok": code == 0}, fh)
        return 0
    engine = INSIDE / "engine"
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(INSIDE / "home"),
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
        }
    )
    if settings.get("omp_threads"):
        os.environ["OMP_NUM_THREADS"] = str(settings["omp_threads"])
    os.chdir(engine)
    sys.path.insert(0, str(engine))
    from autograder.cli import build_parser

    for week in settings["weeks"]:
        _share_references(engine / "solutions", INSIDE / "references", settings["references"].get(week, []))
        argv = ["grade", "--submission", str(INSIDE / "submission"), "--weeks", week]
        argv += ["--json", str(INSIDE / "out" / f"{week}.json"), "--isolation", "process"]
        argv += ["--sandbox-user", settings["user"], f"--namespaces={','.join(NAMESPACES)}"]
        if settings.get("seed") is not None:
            argv += ["--seed", str(settings["seed"])]
        if settings.get("memory_mib"):
            argv += ["--memory-limit", str(settings["memory_mib"])]
        if settings.get("landlock") is False:
            argv.append("--no-landlock")
        args = build_parser().parse_args(argv)
        args.func(args)  # its exit status is in the report (complete, grader_errors)
        _wipe_temporary_space()  # nothing of one week is there for the next
    return 0


def _share_references(solutions: Path, references: Path, names: list[str]) -> None:
    """``solutions/`` holds exactly the given references, readable by the sandbox user."""
    for path in solutions.iterdir():
        if path.name != "__init__.py":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for name in names:
        shutil.copyfile(references / name, solutions / name)
        (solutions / name).chmod(0o644)


def _wipe_temporary_space() -> None:
    for folder in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")):
        for entry in folder.iterdir() if folder.is_dir() else []:
            if entry == INSIDE:
                continue
            shutil.rmtree(
                entry, ignore_errors=True
            ) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


if __name__ == "__main__":
    sys.exit(main())
