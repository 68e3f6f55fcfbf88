"""Old module paths, kept importable for one term: released student templates (their public
tests) and notebooks written against them import ``autograder.drivers_w07``,
``autograder.data`` and the like. Each old name is an alias of the module that replaced it.
Remove this file (and its line in ``__init__.py``) when the next term's template is released.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    **{f"autograder.drivers_w0{n}": f"autograder.drivers.w0{n}" for n in range(2, 10)},
    "autograder._host": "autograder.child_side",
    **{
        f"autograder.{m}": f"autograder.tools.{m}"
        for m in ("release", "sync", "schedule", "data", "capstone", "gradebook")
    },
    **{f"autograder.{m}": f"autograder.sandbox.{m}" for m in ("wire", "landlock", "cgroups", "jail")},
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the new module itself (one module object, two names)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self._spec = module.__spec__  # importlib sets __spec__ to the alias's; put it back below
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
