"""The package face: __all__ matches the docs, docstrings everywhere, no google-adk import."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import adk_lite

from tests.docs import ALL as DOCS


def test_all_names_exist_and_are_documented():
    for name in adk_lite.__all__:
        assert hasattr(adk_lite, name), name
        if not name.startswith("__"):
            assert re.search(rf"\b{name}\b", DOCS), f"{name} is exported but not documented"


def test_public_callables_have_docstrings():
    missing = []
    for name in adk_lite.__all__:
        obj = getattr(adk_lite, name)
        if inspect.isclass(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and (callable(value) or isinstance(value, property)):
                    if not inspect.getdoc(getattr(obj, attr)):
                        missing.append(f"{name}.{attr}")
    assert missing == []


def test_import_does_not_import_google_adk():
    code = "import sys, adk_lite; print('google.adk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_every_public_method_is_documented():
    for cls in (adk_lite.DatabaseSessionService, adk_lite.AsyncDatabaseSessionService):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and inspect.isfunction(value):
                assert f"{attr}(" in DOCS, f"{cls.__name__}.{attr} is not in README.md or docs/"


def test_architecture_notes_name_every_module():
    """docs/architecture.md is kept current: a new module gets its line there."""
    root = Path(__file__).resolve().parent.parent
    notes = (root / "docs" / "architecture.md").read_text()
    for module in sorted((root / "adk_lite").rglob("*.py")):
        dotted = ".".join(module.relative_to(root / "adk_lite").with_suffix("").parts)
        if module.stem != "__main__":
            dotted = dotted.removesuffix(".__init__")
            assert f"`{dotted}`" in notes or f"adk_lite.{dotted}" in notes, dotted
