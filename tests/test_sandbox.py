"""The grader's promises, each tried by a hostile submission: `course grade` as anyone runs it.

Every case is a week-1 module whose functions attack the grader instead of computing attention:
they leave daemons behind, fork past the memory limit, write to the engine and the report,
read other processes' environments, connect to the network, kill or stop the zygote, and send
replies built to hurt the parser. Each grades against a private copy of the engine (so an attack
that worked could not damage this checkout) and checks the promise from the outside. The jailed,
authoritative path has its own tests in `test_jail.py`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from autograder.isolation import open_regular
from autograder.sandbox import landlock
from autograder.sandbox.cgroups import Groups
from tests.helpers import ROOT, make_submission, results_by_function

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_sandbox")

REFERENCE = (ROOT / "solutions" / "w01_attention.py").read_text()
LANDLOCK = landlock.abi_version()
needs_landlock = pytest.mark.skipif(
    LANDLOCK == 0, reason="the kernel has no Landlock, which this promise rests on"
)


def _cgroups_here() -> bool:
    groups = Groups.create()
    if groups is None:
        return False
    groups.close()
    return True


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    """A private copy of the engine, graded with as `course grade` runs it."""
    dest = tmp_path_factory.mktemp("engine")
    ignore = shutil.ignore_patterns("__pycache__", "cache", "templates")
    for name in ("autograder", "exercises", "solutions", "datasets"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def hostile(tmp_path: Path, code: str) -> Path:
    """A submission: the reference week 1 with ``code`` appended (its definitions win)."""
    sub = make_submission(tmp_path / "sub")
    (sub / "w01_attention.py").write_text(REFERENCE + "\n\n# --- the attack ---\n" + code)
    return sub


def run_grade(engine: Path, sub: Path, tmp: Path, *extra: str, env: dict | None = None, timeout=300):
    """`course grade` on week 1 from the engine copy; returns (exit code, report, tmp dir used)."""
    private_tmp = tmp / "tmp"
    private_tmp.mkdir(exist_ok=True)
    out = tmp / "report.json"
    cmd = [sys.executable, "-m", "autograder", "grade", "--submission", str(sub), "--seed", "2024"]
    cmd += ["--json", str(out), "--weeks", "w01", *extra]
    full_env = {**os.environ, "PYTHONPATH": str(engine), "TMPDIR": str(private_tmp), **(env or {})}
    proc = subprocess.run(cmd, cwd=engine, env=full_env, capture_output=True, text=True, timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() else None
    assert report is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode, report, private_tmp


def processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


# --------------------------------------------------------------------------- nothing survives
DAEMON = """
def softmax(x, dim=-1):
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for folder in ("/tmp", "/dev/shm", "/var/tmp"):
                try:
                    open(os.path.join(folder, "TOKEN-left"), "w").write("x")
                except OSError:
                    pass
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "TOKEN"])
        os._exit(0)
    time.sleep(0.5)
    raise RuntimeError("a daemon is running")
"""


def test_nothing_outlives_a_grade(engine, tmp_path):
    """A setsid double-forked daemon and the files it tries to leave die with the grade."""
    token = f"daemon-{uuid.uuid4().hex}"
    sub = hostile(tmp_path, DAEMON.replace("TOKEN", token))
    code, report, private_tmp = run_grade(engine, sub, tmp_path, "--only", "softmax_matches_torch")
    assert code == 0 and report["complete"]
    assert results_by_function(report, "w01")["test_softmax_matches_torch"]["status"] == "error"
    assert processes_with(token) == [], "a submission's daemon outlived `course grade`"
    assert list(private_tmp.iterdir()) == [], "the per-test directories must be gone"
    if LANDLOCK:
        left = [
            f"{d}/{token}-left" for d in ("/tmp", "/dev/shm", "/var/tmp") if Path(d, f"{token}-left").exists()
        ]
        assert left == [], f"files left behind: {left}"


# --------------------------------------------------------------------------- out of reach
REACH = """
def softmax(x, dim=-1):
    import os, pathlib, socket, sys, time
    found = []
    for folder in sys.path:
        target = pathlib.Path(folder) / "autograder" / "checks.py"
        if target.is_file():
            try:
                target.write_text("def check_close(*a, **k):\\n    return None\\n")
                found.append("engine written")
            except OSError:
                pass
    try:
        pathlib.Path(REPORT).write_text("{}")
        found.append("report written")
    except OSError:
        pass
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3)
            try:
                pathlib.Path(REPORT).write_text('{"score": 999}')
            except OSError:
                pass
        os._exit(0)
    for entry in os.listdir("/proc"):
        try:
            data = open(f"/proc/{entry}/environ", "rb").read()
        except OSError:
            continue
        if b"SECRETVALUE" in data:
            found.append("environment: " + data.decode(errors="replace"))
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"exfiltrated")
        found.append("connected")
    except OSError:
        pass
    raise RuntimeError("found: " + " | ".join(found))
"""


@needs_landlock
def test_engine_report_environment_and_network_are_out_of_reach(engine, tmp_path):
    """Submission code cannot write the engine or the report (then or later), read the
    grader's environment, or connect to a port on this machine."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    received = []

    def accept():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not received:
            try:
                conn, _ = listener.accept()
                received.append(conn.recv(100))
            except TimeoutError:
                continue
            except OSError:  # closed: the test is over
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    checks = engine / "autograder" / "checks.py"
    before = hashlib.sha256(checks.read_bytes()).hexdigest()
    secret = f"SECRETVALUE-{uuid.uuid4().hex}"
    report_path = tmp_path / "report.json"
    code_text = REACH.replace("REPORT", repr(str(report_path))).replace(
        "PORT", str(listener.getsockname()[1])
    )
    sub = hostile(tmp_path, code_text)
    code, report, _ = run_grade(
        engine, sub, tmp_path, "--only", "softmax_matches_torch", env={"GRADER_SECRET": secret}
    )
    written = report_path.read_text()
    time.sleep(4)  # the daemon's forgery would land by now
    listener.close()
    assert code == 0
    assert hashlib.sha256(checks.read_bytes()).hexdigest() == before, "the engine was modified"
    assert report_path.read_text() == written, "the report was rewritten after the grader wrote it"
    message = results_by_function(report, "w01")["test_softmax_matches_torch"]["message"]
    assert "found: " in message  # the attack ran
    for success in ("engine written", "report written", "connected", "environment"):
        assert success not in message, f"{success}: {message[:300]}"
    assert secret not in json.dumps(report)
    assert received == [], "a submission reached a port on this machine"


# --------------------------------------------------------------------------- the zygote
ZYGOTE = """
def softmax(x, dim=-1):
    import os, signal
    try:
        os.kill(os.getppid(), signal.SIGNAL)
    except OSError as exc:
        raise RuntimeError(f"could not signal the zygote: {exc}")
    raise RuntimeError("signalled the zygote")
"""


@pytest.mark.parametrize(
    ("signal_name", "landlock_on"),
    [("SIGKILL", True), ("SIGKILL", False), ("SIGSTOP", False)],
    ids=["kill-landlock", "kill-no-landlock", "stop-no-landlock"],
)
def test_a_killed_or_stopped_zygote_costs_the_student_nothing(engine, tmp_path, signal_name, landlock_on):
    """Where the zygote can be signalled (no Landlock, same user) it is restarted at once;
    later tests run normally and nothing is charged to anyone."""
    if landlock_on and LANDLOCK < 6:
        pytest.skip("Landlock's signal scoping needs ABI 6 (Linux 6.12)")
    sub = hostile(tmp_path, ZYGOTE.replace("SIGNAL", signal_name))
    extra = ["--only", "softmax_matches_torch or causal_mask", "--test-limit", "20"]
    if not landlock_on:
        extra.append("--no-landlock")
    code, report, _ = run_grade(engine, sub, tmp_path, *extra)
    assert code == 0 and report["complete"], report.get("grader_errors")
    results = results_by_function(report, "w01")
    for name in ("test_causal_mask_square", "test_causal_mask_bottom_right"):
        assert results[name]["status"] == "passed", results[name]["message"]
    restarts = report["sandbox"]["zygote_restarts"]
    if landlock_on:
        assert "could not signal the zygote" in results["test_softmax_matches_torch"]["message"]
        assert restarts == 0
    else:
        assert restarts >= 1


# --------------------------------------------------------------------------- replies
PARSER = """
def _frame(value=None, raw=None):
    import io, os, socket, stat, struct, time, torch
    if raw is None:
        buf = io.BytesIO()
        torch.save({"ok": value}, buf)
        raw = buf.getvalue()
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!Q", len(raw)) + raw)
        except OSError:
            pass
    time.sleep(60)


def softmax(x, dim=-1):
    shared = [1.0]
    for _ in range(40):
        shared = [shared, shared]  # 2**40 paths through a few hundred bytes
    _frame(shared)


def causal_mask(T_q, T_k=None, device=None):
    import torch
    _frame(torch.zeros(1).expand(2**40))  # a terabyte-sized view of one float


def padding_mask(lengths, T):
    import os, stat, struct, time
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!Q", 1000))
        except OSError:
            pass
    while True:  # a reply trickled one byte at a time: each byte arrives "in time"
        for fd in range(3, 256):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.write(fd, b"x")
            except OSError:
                pass
        time.sleep(0.5)
"""


def test_replies_built_to_hurt_the_parser(engine, tmp_path):
    """Shared containers, huge views and trickled bytes fail their own test, quickly."""
    sub = hostile(tmp_path, PARSER)
    only = "softmax_matches_torch or causal_mask_square or test_padding_mask"
    code, report, _ = run_grade(engine, sub, tmp_path, "--only", only, "--test-limit", "4")
    assert code == 0 and report["complete"]
    results = results_by_function(report, "w01")
    assert "same container twice" in results["test_softmax_matches_torch"]["message"]
    assert "smaller storage" in results["test_causal_mask_square"]["message"]
    assert results["test_padding_mask"]["status"] == "timeout"
    assert results["test_padding_mask"]["duration"] < 30, "one deadline covers the whole reply"


# --------------------------------------------------------------------------- limits
LIMITS = """
def softmax(x, dim=-1):
    import os, time, torch
    holders = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            try:
                hold = torch.ones(300 * 2**20 // 4)  # 300 MiB, every page touched
                time.sleep(30)
            finally:
                os._exit(0)
        holders.append(pid)
    time.sleep(4)
    alive = 0
    for pid in holders:
        try:
            alive += os.waitpid(pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            pass
    raise RuntimeError(f"holding {alive} of 3")


def causal_mask(T_q, T_k=None, device=None):
    import os
    written = 0
    try:
        with open("big.bin", "wb") as fh:
            for _ in range(300):
                fh.write(b"x" * 2**20)
                written += 2**20
    except OSError:
        pass
    raise RuntimeError(f"wrote {written >> 20} MiB")


def padding_mask(lengths, T):
    import os, time
    forks = 0
    for _ in range(1000):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            forks += 1
        except OSError:
            break
    raise RuntimeError(f"forked {forks}")
"""


@pytest.mark.skipif(
    not _cgroups_here(), reason="per-test limits need control groups this user may create (root)"
)
def test_limits_hold_per_test_across_forks(engine, tmp_path):
    """Memory and processes are limited per test, whatever forks; files per file; and
    nothing written is left behind."""
    sub = hostile(tmp_path, LIMITS)
    only = "softmax_matches_torch or causal_mask_square or test_padding_mask"
    code, report, private_tmp = run_grade(engine, sub, tmp_path, "--only", only, "--memory-limit", "512")
    assert code == 0 and report["complete"]
    results = results_by_function(report, "w01")
    held = results["test_softmax_matches_torch"]["message"]
    assert (
        "holding 0 of 3" in held
        or "holding 1 of 3" in held
        or results["test_softmax_matches_torch"]["status"] in ("error", "timeout")
    ), held
    assert "wrote 256 MiB" in results["test_causal_mask_square"]["message"]
    forks = int(results["test_padding_mask"]["message"].split("forked ")[1].split()[0].rstrip("."))
    assert forks < 200
    sandbox = report["sandbox"]
    assert sandbox["memory_bytes"] == 512 << 20 and sandbox["limits_per"] == "test"
    assert sandbox["file_bytes"] == 256 << 20 and sandbox["processes"] <= 200
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- paths
def test_the_grader_opens_only_regular_files_without_following_links(tmp_path):
    """`source()` reads submission files for the 'built, not borrowed' checks: a FIFO, a
    device, a link or a huge file is refused, never waited on or followed."""
    (tmp_path / "plain.py").write_text("x = 1\n")
    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "link.py").symlink_to("/etc/hostname")
    (tmp_path / "pkg").symlink_to(tmp_path)
    (tmp_path / "big.py").write_bytes(b"#" * (2 << 20))
    assert open_regular(tmp_path, "plain.py") == b"x = 1\n"
    for parts in (("fifo.py",), ("link.py",), ("pkg", "plain.py"), ("big.py",)):
        with pytest.raises(OSError):
            open_regular(tmp_path, *parts)


def test_a_fifo_for_a_module_ends_in_a_complete_report(engine, tmp_path):
    sub = make_submission(tmp_path / "sub")
    (sub / "w01_attention.py").unlink()
    os.mkfifo(sub / "w01_attention.py")
    code, report, _ = run_grade(
        engine, sub, tmp_path, "--only", "builds or causal_mask_square", "--test-limit", "3"
    )
    assert code == 0 and report["complete"]
    assert all(t["status"] != "passed" for t in report["weeks"]["w01"]["tests"])


# --------------------------------------------------------------------------- saying so
def test_a_grade_without_the_sandbox_says_so_everywhere(tmp_path):
    """Reports graded without the jail and sandbox user are marked in every rendering, the
    student's copy and status, and the gradebook; a bare report is not taken on trust."""
    import xml.etree.ElementTree as ET

    from autograder import report as render
    from autograder.classroom import sanitize
    from autograder.tools import gradebook

    test = {"id": "x::test_a", "name": "a", "status": "passed", "score": 1.0, "max_score": 1.0, "message": ""}
    week = {"title": "t", "score": 1.0, "max_score": 1.0, "tests": [test]}
    bare = {"schema_version": 1, "score": 1.0, "max_score": 1.0, "seed": 7, "isolation": "process"}
    bare |= {"grader_version": "x", "weeks": {"w01": week}}
    plain = {
        **bare,
        "sandbox": {"isolation": "process", "user": None, "namespaces": [], "authoritative": False},
    }
    jailed = {
        **bare,
        "sandbox": {"user": "course-grader", "namespaces": ["pid", "mount", "net"], "authoritative": True},
    }
    assert "Not an authoritative grade" in render.to_markdown(plain)
    assert "Not an authoritative grade" not in render.to_markdown(jailed)
    render.write_junit(plain, tmp_path / "j.xml")
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").iter("property")}
    assert props["authoritative"] == "no"
    wrapper = {"student": "s", "repository": "o/r", "commit": "c" * 40, "report": plain}
    public = sanitize.sanitize(wrapper, secret=set())
    assert "Not an authoritative grade" in sanitize.to_markdown(public)
    assert sanitize.status_line(public)[1].startswith("not authoritative")
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "bare.json").write_text(json.dumps(bare))
    (folder / "jailed.json").write_text(json.dumps(jailed))
    gradebook.build([folder], tmp_path / "book")
    with open(tmp_path / "book" / "gradebook.csv") as fh:
        rows = {r["student"]: r["sandboxed"] for r in csv.DictReader(fh)}
    assert rows == {"bare": "no", "jailed": "yes"}
