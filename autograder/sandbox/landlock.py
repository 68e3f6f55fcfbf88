"""Landlock (Linux 5.13+) and capabilities: what a submission process may write, connect to and
signal.

Applied by each submission process to itself, after it has made its working directory and
before any submission code runs. It needs no privilege, so it also protects a self-learner's
`course grade` that runs without a sandbox user:

* files: anything may be read, but writing (creating, removing, renaming, truncating, linking)
  is allowed only beneath the process's own working directory, plus ``/dev/null``. The engine,
  the report paths and the rest of the disk are out of reach;
* network (ABI 4+): no TCP ``bind`` or ``connect`` at all;
* scopes (ABI 6+): no signal to a process outside the sandbox (the grader, the zygote, another
  test's process) and no abstract Unix socket outside it;
* Landlock also forbids ``ptrace`` into processes outside the domain, so ``/proc/<pid>/environ``
  and ``/proc/<pid>/mem`` of the grader cannot be read.

Python has no binding for Landlock, and the few third-party ones lag the kernel's ABI, so the
three system calls are made through ctypes here (one screen of code).
"""

from __future__ import annotations

import ctypes
import os
import platform

# System call numbers: the same on every architecture (allocated after the unification).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_CAPSET = {"x86_64": 126, "aarch64": 91, "ppc64le": 184, "s390x": 185, "riscv64": 91}

# Filesystem rights (ABI: the version that introduced them).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
WRITES_V1 = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG
WRITES_V1 |= MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is absent or disabled."""
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def write_rights(abi: int) -> int:
    rights = WRITES_V1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def drop_capabilities() -> None:
    """Give up every capability for good (bounding set, then effective/permitted/inheritable).

    A submission process that runs as root (a `course grade` started by root without a sandbox
    user, in a container say) then has root's uid but none of root's powers: it cannot override
    file permissions, trace or signal other processes, mount, load modules or change limits.
    Harmless for any other user, who holds no capabilities to begin with."""
    libc = _libc()
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails harmlessly without CAP_SETPCAP
    number = _CAPSET.get(platform.machine())
    if number is None:
        if os.geteuid() == 0:
            raise OSError(f"cannot drop capabilities on {platform.machine()}")
        return
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (_CapData * 2)()
    if libc.syscall(number, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def restrict(writable_dirs: list[str], writable_files: list[str] = ("/dev/null",)) -> int:
    """Confine this process (and everything it starts) as the module docstring says.

    Returns the ABI version applied (0: Landlock unavailable, nothing was restricted). Raises
    OSError when Landlock exists but a call fails: a sandbox half set up must not run code.
    """
    abi = abi_version()
    if abi <= 0:
        return 0
    libc = _libc()
    rights = write_rights(abi)
    attr = _RulesetAttr(handled_access_fs=rights)
    size = 8
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        file_rights = WRITE_FILE | (TRUNCATE if abi >= 3 else 0)
        rules = [(path, rights) for path in writable_dirs]
        rules += [(path, file_rights) for path in writable_files if os.path.exists(path)]
        for path, allowed in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
                if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi
