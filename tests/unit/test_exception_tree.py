"""Every exception class in hookline is in the one tree, drawn as it is in the docstring
of ``hookline.exceptions``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import hookline
from hookline import exceptions

#: Modules that need what an optional integration brings (a configured framework).
OPTIONAL = {"hookline.receiver.django", "hookline.__main__"}


def _exception_classes() -> set[type[BaseException]]:
    """Every exception class defined in hookline (a set of classes, not of names: a stray
    named like one of the tree, ``NotFound`` in another module, is still seen)."""
    found: set[type[BaseException]] = set()
    for module_info in pkgutil.walk_packages(hookline.__path__, "hookline."):
        if module_info.name in OPTIONAL:
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("hookline."):
                found.add(cls)
    return found


def _drawn_tree() -> dict[str, str]:
    """Each class of the docstring's drawing and the class it hangs from."""
    assert exceptions.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in exceptions.__doc__.splitlines():
        match = re.search(r"(?:── )(\w+)", line) or re.fullmatch(r"\s*(HooklineError)\s*", line)
        if not match:
            continue
        depth = match.start(1) // 4  # 4 columns a level: the root at 4, its children at 8
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match[1]] = stack[-1][1]
        stack.append((depth, match[1]))
    return parents


def test_every_exception_class_is_a_hookline_error() -> None:
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _exception_classes()
        if not issubclass(cls, exceptions.HooklineError)
    ]
    assert strays == []


def test_the_docstring_draws_every_exception_under_its_parent() -> None:
    found = _exception_classes()
    classes = {cls.__name__: cls for cls in found}
    assert len(classes) == len(found), "two exception classes of the same name"
    drawn = _drawn_tree()
    assert set(drawn) == set(classes) - {"HooklineError"}
    for name, parent in drawn.items():
        assert classes[parent] in classes[name].__bases__, (name, parent)
