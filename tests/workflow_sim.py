"""A small stand-in for the GitHub Actions runner, enough to run this project's workflows' own
steps on this machine: the tests then check what a student or an instructor would see.

It runs one job of a workflow file step by step, as the runner does: ``if:`` conditions and
``${{ … }}`` expressions are evaluated (the subset the project's workflows use: contexts
``github``, ``secrets``, ``vars``, ``env``, ``steps``, ``matrix``, ``inputs``, ``needs``;
operators ``! == != && || ( )``; ``success() failure() cancelled() always() fromJSON()
contains() startsWith() hashFiles()``), ``run:`` scripts run under ``bash -e`` with ``GITHUB_OUTPUT``,
``GITHUB_ENV`` and ``GITHUB_STEP_SUMMARY`` files, step outputs are parsed back, and
``continue-on-error`` is honoured. ``uses:`` steps go to handlers the test supplies (checkout
and set-up steps are usually no-ops here, the checkout being the folder the job runs in).

No reimplementation is complete: this is a test harness (nektos/act needs Docker and runner
images, which the project's CI does not have). What it does not understand, it refuses loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_*][A-Za-z0-9_\-]*|\[[^\]]*\])*))"
)


class Unsupported(Exception):
    pass


def _lookup(contexts: dict, dotted: str):
    parts = re.findall(r"[A-Za-z_*][A-Za-z0-9_\-]*|\[[^\]]*\]", dotted)
    value = contexts
    for part in parts:
        key = part.strip("[]'\"") if part.startswith("[") else part
        if isinstance(value, dict):
            matches = [k for k in value if str(k).lower() == key.lower()]  # contexts ignore case
            value = value[matches[0]] if matches else None
        else:
            return None
    return value


def _truthy(value) -> bool:
    return value not in (None, False, 0, "", "0") if not isinstance(value, str) else value != ""


def evaluate(expression: str, contexts: dict, status: dict):
    """Evaluate one expression (without ``${{ }}``) like the runner does, for the subset above."""
    tokens, pos = [], 0
    while pos < len(expression):
        if not expression[pos:].strip():
            break
        m = TOKEN.match(expression, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read expression {expression!r} at {expression[pos:]!r}")
        tokens.append(m)
        pos = m.end()
    i = 0

    def peek():
        return tokens[i] if i < len(tokens) else None

    def take():
        nonlocal i
        i += 1
        return tokens[i - 1]

    def primary():
        t = take()
        if t["op"] == "(":
            value = disjunction()
            assert take()["op"] == ")"
            return value
        if t["op"] == "!":
            return not _truthy(primary())
        if t["str"] is not None:
            return t["str"][1:-1].replace("''", "'")
        if t["num"] is not None:
            return float(t["num"])
        name = t["name"]
        if name in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[name]
        if peek() is not None and peek()["op"] == "(":
            take()
            args = []
            while peek()["op"] != ")":
                args.append(disjunction())
                if peek()["op"] == ",":
                    take()
            take()
            return call(name.lower(), args)
        return _lookup(contexts, name)

    def call(name, args):
        if name in ("success", "failure", "cancelled", "always"):
            return {"success": not status["failed"], "failure": status["failed"], "cancelled": False}.get(
                name, True
            )
        if name == "fromjson":
            return json.loads(args[0])
        if name == "tojson":
            return json.dumps(args[0])
        if name == "contains":
            hay, needle = args
            return needle in hay if isinstance(hay, list) else str(needle).lower() in str(hay).lower()
        if name == "startswith":
            return str(args[0]).lower().startswith(str(args[1]).lower())
        if name == "hashfiles":  # '' when nothing matches, as on the runner
            workdir = Path(contexts["__workdir__"])
            files = sorted({p for pattern in args for p in workdir.glob(pattern) if p.is_file()})
            digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files))
            return digest.hexdigest() if files else ""
        raise Unsupported(f"function {name}()")

    def comparison():
        left = primary()
        while peek() is not None and peek()["op"] in ("==", "!="):
            op = take()["op"]
            right = primary()
            same = str(left).lower() == str(right).lower() if isinstance(left, str) else left == right
            left = same if op == "==" else not same
        return left

    def conjunction():
        left = comparison()
        while peek() is not None and peek()["op"] == "&&":
            take()
            right = comparison()
            left = right if _truthy(left) else left
        return left

    def disjunction():
        left = conjunction()
        while peek() is not None and peek()["op"] == "||":
            take()
            right = conjunction()
            left = left if _truthy(left) else right
        return left

    value = disjunction()
    if i != len(tokens):
        raise Unsupported(f"trailing tokens in {expression!r}")
    return value


def substitute(text: str, contexts: dict, status: dict) -> str:
    def one(m):
        value = evaluate(m.group(1), contexts, status)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else json.dumps(value)

    return EXPR.sub(one, text)


def _outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV lines: ``key=value`` and ``key<<DELIM … DELIM``."""
    values, lines = {}, path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            values[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
        i += 1
    return values


@dataclass
class StepResult:
    name: str
    ran: bool
    outcome: str = "skipped"  # success | failure | skipped: what the step did
    output: str = ""
    conclusion: str = "skipped"  # what counts for the job (continue-on-error turns failure to success)


@dataclass
class JobResult:
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    skipped: bool = False
    outputs: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether the job would be red on GitHub."""
        return any(s.conclusion == "failure" for s in self.steps)

    def step(self, name_part: str) -> StepResult:
        (found,) = [s for s in self.steps if name_part in s.name]
        return found


def run_job(
    workflow: Path,
    job_id: str,
    *,
    workdir: Path,
    github: dict,
    secrets: dict | None = None,
    variables: dict | None = None,
    matrix: dict | None = None,
    inputs: dict | None = None,
    needs: dict | None = None,
    env: dict | None = None,
    uses: dict | None = None,
    replace_run: dict | None = None,
    timeout: float = 900,
) -> JobResult:
    """Run job ``job_id`` of ``workflow`` in ``workdir``; ``uses`` maps an action (its name before
    the ``@``) to a Python callable ``(step_with: dict, workdir) -> None``; ``replace_run`` maps a
    step's name to a script run instead of its own (installs that need a network, say)."""
    spec = yaml.safe_load(workflow.read_text())
    job = spec["jobs"][job_id]
    contexts = {
        "github": github,
        "secrets": secrets or {},
        "vars": variables or {},
        "matrix": matrix or {},
        "inputs": inputs or {},
        "needs": needs or {},
        "steps": {},
        "env": {},
        "__workdir__": str(workdir),
    }
    status = {"failed": False}
    result = JobResult()
    if "if" in job and not _truthy(
        evaluate(job["if"].replace("${{", "").replace("}}", ""), contexts, status)
    ):
        result.skipped = True
        return result
    files = Path(tempfile.mkdtemp(prefix="actions-"))
    summary, output_env = files / "summary.md", files / "env"
    summary.touch()
    base_env = {
        **os.environ,
        **{k: str(v) for k, v in (env or {}).items()},
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": github.get("repository", ""),
        "GITHUB_SHA": github.get("sha", ""),
        "GITHUB_REF_NAME": github.get("ref_name", ""),
        "GITHUB_ACTOR": github.get("actor", ""),
        "GITHUB_API_URL": github.get("api_url", ""),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ENV": str(output_env),
    }
    for key, value in (spec.get("env") or {}).items() | (job.get("env") or {}).items():
        base_env[key] = substitute(str(value), contexts, status)
    for n, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("uses") or step.get("run", "")[:40]
        condition = step.get("if", "success()")
        condition = (
            condition.replace("${{", "").replace("}}", "") if isinstance(condition, str) else condition
        )
        if not _truthy(evaluate(str(condition), contexts, status)):
            result.steps.append(StepResult(name, False))
            if step.get("id"):
                contexts["steps"][step["id"]] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        step_env = dict(base_env) | _outputs(output_env)
        contexts["env"] = {k: v for k, v in step_env.items() if k not in os.environ}
        for key, value in (step.get("env") or {}).items():
            step_env[key] = substitute(str(value), contexts, status)
        outputs_file = files / f"output-{n}"
        outputs_file.touch()
        step_env["GITHUB_OUTPUT"] = str(outputs_file)
        if "uses" in step:
            action = step["uses"].split("@")[0]
            if action not in (uses or {}):
                raise Unsupported(f"no handler for the action {action}")
            with_values = {
                k: substitute(str(v), contexts, status) for k, v in (step.get("with") or {}).items()
            }
            try:
                uses[action](with_values, workdir)
                outcome, text = "success", ""
            except Exception as exc:  # noqa: BLE001 - a failing action fails its step
                outcome, text = "failure", repr(exc)
        else:
            script = (replace_run or {}).get(name, step["run"])
            script = substitute(script, contexts, status)
            proc = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=workdir,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            outcome = "success" if proc.returncode == 0 else "failure"
            text = proc.stdout + proc.stderr
        conclusion = "success" if step.get("continue-on-error") else outcome
        if conclusion == "failure":
            status["failed"] = True
        result.steps.append(StepResult(name, True, outcome, text, conclusion))
        if step.get("id"):
            contexts["steps"][step["id"]] = {
                "outputs": _outputs(outputs_file),
                "outcome": outcome,
                "conclusion": conclusion,
            }
    result.summary = summary.read_text()
    for key, value in (job.get("outputs") or {}).items():
        result.outputs[key] = substitute(str(value), contexts, status)
    return result
