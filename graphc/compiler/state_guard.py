"""Guards on the Python state a compiled function reads besides its arguments.

A replayed plan runs none of the user's Python, so the Python values its trace depended on must be the same at the
next call. `StateGuard` records, before a trace, everything reachable from the function and its non-tensor
arguments: closure cells and the globals its code names, defaults, and the attributes of objects reachable from
those (a module's `training` flag, hyperparameters and parameters, an optimizer's `param_groups`), recursively
through containers and the methods of user classes. Numbers, strings and tuples of them are compared by value,
everything else by identity, and containers by length. Library code (graphc, numpy, torch) is not walked: it reads
no user state except through its arguments.

A trace that changed one of these values itself (a global step counter), or drew from Python's or numpy's global
random generator, is not replayed: the next call traces again, so the change or the draw happens on every call, as
it does eagerly."""
from __future__ import annotations

import random
import types
from functools import partial

import numpy as np

from ..tensor import Tensor

VALUES = (int, float, bool, str, bytes, complex, type(None))
LIBRARIES = {"graphc", "numpy", "torch", "scipy", "builtins", "functools", "math", "typing", "collections"}
MAX_ITEMS = 256  # a larger container is data, not configuration: guarded by identity, not walked
MAX_OBJECTS = 4096
MISSING = object()


def equal(a, b) -> bool:
    """Same object, or equal values of one value type (NaN equals NaN), element by element for tuples."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is tuple:
        return len(a) == len(b) and all(map(equal, a, b))
    return kind in VALUES and (a == b or (a != a and b != b))


def library(obj) -> bool:
    return (getattr(obj, "__module__", None) or "builtins").partition(".")[0] in LIBRARIES


def global_random_states() -> tuple:
    return random.getstate(), np.random.get_state()


def equal_random_states(a: tuple, b: tuple) -> bool:
    (py_a, np_a), (py_b, np_b) = a, b
    return py_a == py_b and all(np.array_equal(x, y) for x, y in zip(np_a, np_b))


def code_names(code: types.CodeType) -> set[str]:
    """The global names a code object and the functions, lambdas and comprehensions nested in it may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


class StateGuard:
    """The values reachable from `roots` now, and `changed()` to say which one differs later."""

    def __init__(self, roots: list):
        self.items: list[tuple[dict, object, object, str]] = []  # (dict, key, value, description)
        self.cells: list[tuple[types.CellType, object, str]] = []
        self.positions: list[tuple[list, int, object, str]] = []  # (list, index, value, description)
        self.lengths: list[tuple[dict | list, int, str]] = []
        self._seen: dict[int, object] = {}  # id -> object, kept alive so ids stay unique while walking
        for root in roots:
            self._walk(root, type(root).__name__)
        del self._seen
        self._random_states = global_random_states()

    def changed_by_run(self) -> str | None:
        """After a trace: what the function changed while it ran (its own state, or a global random draw)."""
        if not equal_random_states(self._random_states, global_random_states()):
            return "the global random state (random or numpy.random)"
        return self.changed()

    def changed(self) -> str | None:
        """What differs from when the guard was made (a description for logs), or None."""
        for d, key, value, what in self.items:
            current = d.get(key, MISSING)
            if current is not value and not equal(current, value):
                return what
        for container, length, what in self.lengths:
            if len(container) != length:
                return what
        for items, i, value, what in self.positions:
            if items[i] is not value and not equal(items[i], value):
                return what
        for cell, value, what in self.cells:
            try:
                current = cell.cell_contents
            except ValueError:
                return what
            if current is not value and not equal(current, value):
                return what
        return None

    def _walk(self, obj, what: str) -> None:
        if type(obj) in VALUES or id(obj) in self._seen or len(self._seen) >= MAX_OBJECTS:
            return
        self._seen[id(obj)] = obj
        if isinstance(obj, (Tensor, np.ndarray, np.generic, type, types.ModuleType, types.BuiltinFunctionType)):
            return
        from .compile import CompiledFunction

        if isinstance(obj, CompiledFunction):
            self._walk(obj.fn, what)
        elif isinstance(obj, types.FunctionType):
            self._function(obj)
        elif isinstance(obj, types.MethodType):
            self._walk(obj.__func__, what)
            self._walk(obj.__self__, what)
        elif isinstance(obj, partial):
            for x in (obj.func, *obj.args, *obj.keywords.values()):
                self._walk(x, what)
        elif isinstance(obj, dict):
            self._dict(obj, what)
        elif isinstance(obj, list):
            self._list(obj, what)
        elif isinstance(obj, tuple):
            for x in obj:
                self._walk(x, what)
        elif hasattr(obj, "__dict__"):
            self._dict(vars(obj), type(obj).__name__)
            for cls in type(obj).__mro__:
                if not library(cls):
                    for attr in vars(cls).values():
                        self._walk(attr, f"{cls.__name__}")

    def _function(self, fn: types.FunctionType) -> None:
        if library(fn):
            return
        name = fn.__qualname__
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            self.cells.append((cell, value, f"{var} (a variable {name} closes over)"))
            self._walk(value, var)
        for var in sorted(code_names(fn.__code__)):
            if var in fn.__globals__:
                self._item(fn.__globals__, var, f"global {var} (read by {name})")
        for x in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            self._walk(x, f"a default of {name}")

    def _dict(self, d: dict, what: str) -> None:
        if len(d) > MAX_ITEMS:
            return
        self.lengths.append((d, len(d), f"the keys of {what}"))
        for key in list(d):
            self._item(d, key, f"{key} of {what}" if type(key) is str else f"an item of {what}")

    def _list(self, items: list, what: str) -> None:
        if len(items) > MAX_ITEMS:
            return
        self.lengths.append((items, len(items), f"the length of a list in {what}"))
        for i, x in enumerate(items):
            self.positions.append((items, i, x, f"item {i} of a list in {what}"))
            self._walk(x, what)

    def _item(self, d: dict, key, what: str) -> None:
        value = d[key]
        self.items.append((d, key, value, what))
        self._walk(value, what)
