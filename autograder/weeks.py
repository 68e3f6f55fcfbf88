"""The weeks: one table, the single place that names modules, slugs and time budgets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Week:
    id: str  # "w01"
    module: str  # "w01_attention": exercises/w01_attention.py, solutions/…, course/w01_attention/
    title: str
    budget_s: float  # the hidden suite's target wall time on 2 CPU cores (SPEC §4.8)
    limit_s: float  # hard cap while grading: past it every remaining test of the week times out
    test_limit_s: float = 20.0  # default wall-clock limit of one test
    uses_own_earlier_weeks: bool = False  # the capstone grades the student's whole stack

    @property
    def number(self) -> int:
        return int(self.id[1:])

    @property
    def slug(self) -> str:
        return self.module.split("_", 1)[1]


WEEKS: tuple[Week, ...] = (
    Week("w01", "w01_attention", "Scaled dot-product attention", 10, 90),
    Week("w02", "w02_multihead", "Multi-head attention", 10, 90),
    Week("w03", "w03_positional", "Positional encodings", 10, 90),
    Week("w04", "w04_blocks", "Transformer blocks", 10, 90),
    Week("w05", "w05_encoder", "Encoders and masked-language modelling", 10, 120),
    Week("w06", "w06_decoder", "Decoders, sampling and the KV cache", 10, 120),
    Week("w07", "w07_training", "Training recipes", 10, 120),
    Week("w08", "w08_lora", "LoRA fine-tuning", 10, 120),
    Week("w09", "w09_capstone", "Capstone: Mini-GPT", 30, 240, 60.0, True),
    Week("w10", "w10_variants", "Modern transformer variants", 10, 120),
)


def get_week(key: str | int) -> Week:
    """Accepts ``3``, ``"3"``, ``"w03"``, ``"positional"`` or ``"w03_positional"``."""
    text = str(key).strip().lower()
    for week in WEEKS:
        if text in (week.id, week.module, week.slug) or (text.isdigit() and int(text) == week.number):
            return week
    names = ", ".join(f"{w.number}/{w.id}/{w.slug}" for w in WEEKS)
    raise KeyError(f"unknown week {key!r}; expected one of {names}")


def module_path(package_dir: Path, week: Week) -> Path | None:
    """The file (or package) of a week's module in a package directory, if present."""
    for candidate in (package_dir / f"{week.module}.py", package_dir / week.module / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def reference_modules(week: Week, solutions_dir: Path = ROOT / "solutions") -> dict[str, str]:
    """Earlier weeks' reference files, substituted for the student's own while grading
    ``week``: a bug in week k costs points in week k only. Empty without solutions/."""
    if week.uses_own_earlier_weeks:
        return {}
    found = {}
    for earlier in WEEKS[: week.number - 1]:
        path = module_path(solutions_dir, earlier)
        if path is not None and path.name != "__init__.py":
            found[earlier.module] = str(path)
    return found


def is_course_repository(root: Path = ROOT) -> bool:
    """The course's own (instructor's) repository holds the hidden suites, autograder/suites/;
    a student repository made by `course release` never does (the release audit refuses them),
    whether or not the student has checked out solutions/ from the `solutions` branch."""
    return (root / "autograder" / "suites").is_dir()
