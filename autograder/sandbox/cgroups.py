"""Control groups: a memory and process budget per test, across every process the test starts.

Resource limits (`setrlimit`) hold per process: three forked processes may each use the whole
address-space limit. A control group holds a budget for the test's processes together, and lets
the grader kill all of them at once at the end of the test, however they were started (a
double-forked ``setsid`` daemon included).

Where the grader may create control groups (it runs as root, or in a delegated subtree), one
group is made per grading run and a leaf per test. cgroup v2 is used where its ``memory`` and
``pids`` controllers are enabled; otherwise the v1 ``memory`` and ``pids`` hierarchies where
they are mounted. Nowhere else (an ordinary user's `course grade`): then the per-process limits
and the zygote's reaping are what remains, and the report says so.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of every cgroup mount."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        if len(parts) >= 5 and rest and rest[0] in ("cgroup", "cgroup2"):
            options = set(rest[2].split(",")) if len(rest) > 2 else set()
            found.append((parts[4], rest[0], options))
    return found


def _own_paths() -> dict[str, str]:
    """Controller (``""`` for v2) -> this process's path in that hierarchy."""
    paths = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return []


@dataclass
class Leaf:
    """One test's group: ``procs`` are the files a process writes its pid into to join."""

    dirs: list[Path]
    procs: list[str]
    version: str

    def kill(self, timeout: float = 5.0) -> None:
        """Kill every process in the group and wait until it is empty."""
        if self.version == "v2" and (self.dirs[0] / "cgroup.kill").exists():
            try:
                _write(self.dirs[0] / "cgroup.kill", "1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = {pid for d in self.dirs for pid in _pids(d / "cgroup.procs")}
            if not alive:
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.001)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)


@dataclass
class Groups:
    """The grading run's control groups (see the module docstring)."""

    version: str  # "v2" or "v1"
    bases: dict[str, Path]  # controller -> the run's group ("" for v2)
    leaves: list[Leaf] = field(default_factory=list)

    @classmethod
    def create(cls) -> Groups | None:
        """The run's groups, or None where this process may not make them."""
        try:
            return cls._create_v2() or cls._create_v1()
        except OSError:
            return None

    @classmethod
    def _create_v2(cls) -> Groups | None:
        own = _own_paths().get("")
        mounts = [m for m, fs, _ in _mounts() if fs == "cgroup2"]
        if own is None or not mounts:
            return None
        mount = Path(mounts[0])
        here = mount / own.lstrip("/")
        parent = here if here == mount else here.parent
        try:
            available = set((here / "cgroup.controllers").read_text().split())
        except OSError:
            return None
        if not {"memory", "pids"} <= available:
            return None
        base = parent / f"course-grader-{uuid.uuid4().hex[:12]}"
        base.mkdir()
        try:
            _write(base / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            base.rmdir()
            return None
        return cls("v2", {"": base})

    @classmethod
    def _create_v1(cls) -> Groups | None:
        own = _own_paths()
        bases = {}
        name = f"course-grader-{uuid.uuid4().hex[:12]}"
        for mount, fs, options in _mounts():
            for controller in ("memory", "pids"):
                if fs == "cgroup" and controller in options and controller in own:
                    base = Path(mount) / own[controller].lstrip("/") / name
                    try:
                        base.mkdir()
                    except OSError:
                        continue
                    bases[controller] = base
        if "memory" not in bases:
            for base in bases.values():
                base.rmdir()
            return None
        return cls("v1", bases)

    def leaf(self, name: str, memory_bytes: int, max_pids: int) -> Leaf:
        dirs = []
        try:
            if self.version == "v2":
                d = self.bases[""] / name
                d.mkdir()
                dirs.append(d)
                _write(d / "memory.max", str(memory_bytes))
                _write(d / "memory.swap.max", "0") if (d / "memory.swap.max").exists() else None
                _write(d / "pids.max", str(max_pids))
            else:
                for controller, base in self.bases.items():
                    d = base / name
                    d.mkdir()
                    dirs.append(d)
                    if controller == "memory":
                        _write(d / "memory.limit_in_bytes", str(memory_bytes))
                        if (d / "memory.memsw.limit_in_bytes").exists():
                            _write(d / "memory.memsw.limit_in_bytes", str(memory_bytes))
                    else:
                        _write(d / "pids.max", str(max_pids))
        except OSError:
            Leaf(dirs, [], self.version).remove()
            raise
        leaf = Leaf(dirs, [str(d / "cgroup.procs") for d in dirs], self.version)
        self.leaves.append(leaf)
        return leaf

    def describe(self) -> str:
        return f"cgroup {self.version} ({', '.join(sorted(self.bases) or ['memory', 'pids'])})"

    def close(self) -> None:
        for leaf in self.leaves:
            leaf.kill()
            leaf.remove()
        self.leaves.clear()
        for base in self.bases.values():
            try:
                base.rmdir()
            except OSError:
                pass
