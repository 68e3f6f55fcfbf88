"""The authoritative path, attacked: jailed grading of a class with a hostile student in it.

Needs root and namespaces (as on GitHub's runners under sudo, and in this project's CI); skipped
elsewhere with the reason. One class is graded once per module: Eve (hostile) and Ada (the
reference, every week). Eve's week 1 runs *without* Landlock, so what stops her is the jail
itself: namespaces, private /tmp, file ownership, the sandbox user. Ada's week 1 module is a
canary: it sabotages itself if it can see anything of Eve's run.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from autograder.classroom import grading
from autograder.classroom.__main__ import main as classroom_main
from autograder.sandbox import jail
from autograder.weeks import WEEKS, get_week
from tests.helpers import ROOT

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_jail")

PROBLEM = jail.available()
needs_jail = pytest.mark.skipif(PROBLEM is not None, reason=f"jailed grading is not possible here: {PROBLEM}")

REFERENCE = (ROOT / "solutions" / "w01_attention.py").read_text()
WRONG = REFERENCE.replace(
    "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)", "scores = q @ k.transpose(-2, -1)"
)
SEED = 1234567891
TOKEN = f"eve-{uuid.uuid4().hex[:12]}"
DISTINCTIVE = "x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))"

EVE = '''
import importlib as _importlib
import os as _os
import sys as _sys

_FOUND = []


def _hunt():
    """Look everywhere for week 1's reference solution."""
    try:
        _importlib.import_module("solutions.w01_attention")
        _FOUND.append("found reference: import solutions.w01_attention")
    except Exception:
        pass
    # Every folder on the path except the interpreter's own installation (the import above
    # is how an installed copy would be found): walking site-packages in every test's child
    # cost this file half a minute and could find nothing the import cannot.
    installed = (_sys.prefix, _sys.base_prefix, _sys.exec_prefix)
    on_path = [p for p in _sys.path if p and not p.startswith(installed)]
    roots = ["/tmp", "/proc/1/cwd", "/root", "/home", "/work", *on_path]
    for root in roots:
        for folder, dirs, files in _os.walk(root):
            if folder.count(_os.sep) - root.count(_os.sep) > 6 or folder.startswith("/proc/"):
                dirs[:] = []
            for name in files:
                if name == "w01_attention.py":
                    try:
                        if DISTINCTIVE in open(_os.path.join(folder, name)).read():
                            _FOUND.append("found reference at " + _os.path.join(folder, name))
                    except OSError:
                        pass


def _daemon():
    """Forked off for the rest of the run: race the grader's directories, hunt other
    students' processes, forge the report, leave marks in the shared temporary folders."""
    script = """
import os, signal, time
deadline = time.monotonic() + 90
work = os.path.dirname(os.getcwd())
while time.monotonic() < deadline:
    for n in range(64):
        try:
            os.symlink("/tmp/grading/out", os.path.join(work, "child-%d" % n))
        except OSError:
            pass
    for entry in os.listdir(work) if os.access(work, os.R_OK) else []:
        try:
            os.rename(os.path.join(work, entry), os.path.join(work, entry + "-x"))
        except OSError:
            pass
    for target in ("/tmp/grading/out/report.json", "/tmp/grading/report.json"):
        try:
            open(target, "w").write('{"score": 999}')
        except OSError:
            pass
    for mark in ("/tmp/eve-was-here", "/dev/shm/eve-was-here", "/var/tmp/eve-was-here"):
        try:
            open(mark, "w").write("x")
        except OSError:
            pass
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    time.sleep(0.05)
"""
    if _os.fork() == 0:
        _os.setsid()
        if _os.fork() == 0:
            _os.execv(_sys.executable, [_sys.executable, "-c", script, "TOKEN"])
        _os._exit(0)


_hunt()
_daemon()


def softmax(x, dim=-1):
    import signal
    seen = list(_FOUND)
    for target in (_os.getppid(), 1):
        try:
            _os.kill(target, signal.SIGKILL)
            seen.append(f"killed {target}")
        except OSError:
            pass
    for entry in _os.listdir("/proc"):
        for part in ("cmdline", "environ"):
            try:
                seen.append(open(f"/proc/{entry}/{part}", "rb").read().decode(errors="replace"))
            except OSError:
                pass
    raise RuntimeError("LOOT " + " ".join(seen)[-5000:])
'''.replace("DISTINCTIVE", repr(DISTINCTIVE)).replace("TOKEN", TOKEN)

ADA_CANARY = """
import os as _os

_seen = [p for p in ("/tmp/eve-was-here", "/dev/shm/eve-was-here", "/var/tmp/eve-was-here") if _os.path.exists(p)]
for _entry in _os.listdir("/proc"):
    try:
        if _entry.isdigit() and b"TOKEN" in open(f"/proc/{_entry}/cmdline", "rb").read():
            _seen.append("process " + _entry)
    except OSError:
        pass
if _seen:
    raise RuntimeError("Ada can see Eve's run: " + ", ".join(_seen))
""".replace("TOKEN", TOKEN)


def _student(base: Path, name: str, modules: dict[str, str]) -> Path:
    folder = base / "submissions" / name
    sub = folder / "submission"
    sub.mkdir(parents=True)
    for path in (ROOT / "solutions").rglob("*.py"):
        target = sub / path.relative_to(ROOT / "solutions")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    for module, text in modules.items():
        (sub / module).write_text(text)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    meta = {"student": name, "repository": f"classroom/tdd-{name}", "commit": commit}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _alive(token: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(entry)
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("jailed-class")
    sandbox = grading.find_sandbox("required", grading.DEFAULT_USER)
    eve = _student(base, "eve", {"w01_attention.py": WRONG + "\n" + EVE})
    future = "from __future__ import annotations\n"
    ada = _student(base, "ada", {"w01_attention.py": REFERENCE.replace(future, future + ADA_CANARY, 1)})
    weeks = [get_week(1), get_week(2)]
    # Eve first, without Landlock, so that her daemon is at large when Ada is graded.
    old = grading._grade_weeks

    def eve_without_landlock(sandbox, submission, weeks, seed, public, root):
        return old(sandbox, submission, weeks, seed, public, root, landlock=False)

    grading._grade_weeks = eve_without_landlock
    try:
        eve_report = grading.grade_submission(eve, base / "reports", weeks, seed=SEED, sandbox=sandbox)
    finally:
        grading._grade_weeks = old
    alive_after_eve = _alive(TOKEN)
    present = [w for w in WEEKS if (ROOT / "autograder" / "suites" / w.module).is_dir()]
    ada_report = grading.grade_submission(ada, base / "reports", present, seed=SEED, sandbox=sandbox)
    return {
        "eve": json.loads(eve_report.read_text()),
        "ada": json.loads(ada_report.read_text()),
        "alive_after_eve": alive_after_eve,
        "weeks": [w.id for w in present],
    }


def _messages(wrapper: dict) -> str:
    report = wrapper["report"] or wrapper.get("partial_report") or {}
    return "\n".join(t["message"] for w in report.get("weeks", {}).values() for t in w["tests"])


@needs_jail
def test_the_reference_gets_full_marks_in_the_jail_every_week(graded):
    ada = graded["ada"]
    assert ada.get("error") is None, ada.get("error")
    report = ada["report"]
    assert sorted(report["weeks"]) == graded["weeks"]
    for week_id, week in report["weeks"].items():
        failing = [(t["name"], t["message"][:200]) for t in week["tests"] if t["status"] != "passed"]
        assert week["score"] == week["max_score"], f"{week_id}: {failing}"
    assert report["sandbox"]["authoritative"] and report["sandbox"]["user"] == grading.DEFAULT_USER
    assert set(report["sandbox"]["namespaces"]) >= {"pid", "mount", "net"}


@needs_jail
def test_a_hostile_run_ends_whole_and_touches_no_other(graded):
    """Eve's daemon dies with her run; Ada's canary saw nothing of it (no process, no file
    in /tmp, /dev/shm or /var/tmp); Eve's wrong code scored what wrong code scores."""
    assert graded["alive_after_eve"] == []
    assert "Ada can see Eve" not in _messages(graded["ada"])
    eve = graded["eve"]
    assert eve.get("error") is None, eve.get("error")
    w01 = eve["report"]["weeks"]["w01"]
    assert w01["score"] < w01["max_score"]
    by_name = {t["id"].split("::")[-1]: t for t in w01["tests"]}
    assert by_name["test_sdpa_matches_pytorch_3d"]["status"] != "passed"
    assert "LOOT" in by_name["test_softmax_matches_torch"]["message"]  # the attack did run
    assert "killed" not in by_name["test_softmax_matches_torch"]["message"]
    assert eve["report"]["sandbox"]["zygote_restarts"] == 0


@needs_jail
def test_no_reference_of_an_unpublished_week_is_within_reach(graded):
    assert "found reference" not in _messages(graded["eve"])


@needs_jail
def test_the_seed_never_reaches_submission_code(graded):
    text = _messages(graded["eve"])
    assert "LOOT" in text
    for form in (str(SEED), hex(SEED), hex(SEED)[2:]):
        assert form not in text


def test_engine_copies_hold_only_public_earlier_references(tmp_path):
    w01, w02, w04 = get_week(1), get_week(2), get_week(4)
    names = lambda d: sorted(p.name for p in (d / "solutions").glob("w*.py"))  # noqa: E731
    assert names(grading._engine(tmp_path / "a", w01, {"w01", "w02"})) == []
    assert names(grading._engine(tmp_path / "b", w02, set())) == []
    assert names(grading._engine(tmp_path / "c", w02, {"w01"})) == ["w01_attention.py"]
    assert names(grading._engine(tmp_path / "d", w04, {"w01", "w03", "w04"})) == [
        "w01_attention.py",
        "w03_positional.py",
    ]
    # The jail grades a submission's weeks in turn, sharing out each week's references alone.
    assert grading._references([w01, w02, w04], {"w01", "w03", "w04"}, ROOT) == {
        "w01": [],
        "w02": ["w01_attention.py"],
        "w04": ["w01_attention.py", "w03_positional.py"],
    }
    suites = tmp_path / "d" / "autograder" / "suites"
    assert all((p.stat().st_mode & 0o077) == 0 for p in [suites, *suites.rglob("*")])


def test_the_authoritative_grader_fails_closed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jail, "available", lambda: "no namespaces on this machine")
    (tmp_path / "subs").mkdir()
    code = classroom_main(
        ["grade", "--submissions", str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--weeks", "w01"]
    )
    assert code == 2
    assert "no sandbox, so no authoritative grade" in capsys.readouterr().err
