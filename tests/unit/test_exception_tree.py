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


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(hookline.__path__, "hookline."):
        if module_info.name in OPTIONAL:
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("hookline."):
                found[cls.__name__] = cls
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
        f"{cls.__module__}.{name}"
        for name, cls in _exception_classes().items()
        if not issubclass(cls, exceptions.HooklineError)
    ]
    assert strays == []


def test_the_docstring_draws_every_exception_under_its_parent() -> None:
    classes = _exception_classes()
    drawn = _drawn_tree()
    assert set(drawn) == set(classes) - {"HooklineError"}
    for name, parent in drawn.items():
        assert classes[parent] in classes[name].__bases__, (name, parent)
