"""Every docstring example in the package runs and gives what it shows (one test per module that has any).

Modules are found by walking the package, so a new module's examples are checked without listing it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import qaembed

MODULES = sorted(info.name for info in pkgutil.walk_packages(qaembed.__path__, "qaembed.") if not info.name.endswith("__main__"))


def test_modules_are_found():
    assert {"qaembed.records", "qaembed.losses.infonce", "qaembed.serve.run"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output)"
