#!/usr/bin/env bash
# Set-up-as-you-go entry point for the course repository.
#
#   ./dev.sh grade [course grade options]   grade a submission (default: the reference solutions)
#   ./dev.sh test  [pytest options]         the project's own checks: lint, sync, tests
#   ./dev.sh course …                       any `course` command inside the environment
#
# The first run creates .venv/ with Python 3.11+, a CPU build of PyTorch and the project
# (editable, with the instructor and dev extras); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=.venv
STAMP=$VENV/.installed

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
    "$PYTHON" -m venv "$VENV"
  fi
  local want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)-$TORCH_SPEC
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # Torch first, alone: set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to take
    # the small CPU-only wheel where that index is reachable.
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
      "$VENV/bin/pip" install --quiet "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    else
      "$VENV/bin/pip" install --quiet "$TORCH_SPEC"
    fi
    "$VENV/bin/pip" install --quiet -e ".[instructor,dev]"
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$STAMP"
  fi
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
  grade)
    setup
    # Everything grading needs ships with the repository (tiny Shakespeare included): no download.
    exec "$VENV/bin/course" grade "$@"
    ;;
  test)
    setup
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/course" sync --check
    # Two workers on two cores, one thread each (the grader's children use one already):
    # more threads than cores only make every process wait for the others.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    # Files with module fixtures (a graded class, a release) each go to one worker (xdist_group).
    exec "$VENV/bin/python" -m pytest tests -n 2 --dist loadgroup --durations=25 "$@"
    ;;
  course)
    setup
    exec "$VENV/bin/course" "$@"
    ;;
  *)
    sed -n '2,9p' "$0"
    [ "$cmd" = help ] && exit 0 || exit 2
    ;;
esac
