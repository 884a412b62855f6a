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

import collections
import collections.abc
import dis
import functools
import random
import sys
import types
import weakref
from collections.abc import Callable

import numpy as np

from ..dtypes import as_number
from ..ops.creation import Generator, default_generator
from ..tensor import Size, Tensor
from .scalars import FLOATS

VALUES = (int, float, bool, str, bytes, complex, type(None))
# values a run may set that a replay sets again (a counter's int is not one; a Size's sizes are guards)
CONSTANTS = (bool, str, type(None), Size)
LIBRARIES = {"graphc", "numpy", "torch", "scipy", "builtins", "functools", "math", "typing", "collections"}
MAX_ITEMS = 256  # a larger container is data, not configuration: guarded by identity, not walked
MAX_OBJECTS = 4096
MAX_ARRAY = 1 << 16  # a numpy array read as state is guarded by value up to this size (larger: data)
MISSING = object()


def equal(a, b) -> bool:
    """Same object, or equal values of one value type (NaN equals NaN), element by element for tuples; bound
    methods of one function and object."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is tuple or kind is Size:
        return len(a) == len(b) and all(map(equal, a, b))
    if kind is types.MethodType:  # each read of a classmethod (a namedtuple's _make) binds a new method object
        return a.__func__ is b.__func__ and a.__self__ is b.__self__
    return kind in VALUES and (a == b or (a != a and b != b))


def library(obj) -> bool:
    return (getattr(obj, "__module__", None) or "builtins").partition(".")[0] in LIBRARIES


def global_random_states() -> tuple:
    """Python's and numpy's global random states, and the stream of graphc's default generator (manual_seed and
    set_rng_state start a new one; draws advance it, which a plan redoes at run time)."""
    return random.getstate(), np.random.get_state(), default_generator._rng


def floats_changed(old, new) -> bool:
    """Whether new is old with other float values: both floats, or tuples whose floats differ and nothing else."""
    if type(old) in FLOATS and type(new) in FLOATS:
        return not equal(old, new)
    if type(old) is not tuple or type(new) is not tuple or len(old) != len(new):
        return False
    return not equal(old, new) and all(type(a) in FLOATS and type(b) in FLOATS or equal(a, b)
                                       for a, b in zip(old, new))


def equal_random_states(a: tuple, b: tuple) -> bool:
    (py_a, np_a, stream_a), (py_b, np_b, stream_b) = a, b
    return py_a == py_b and all(np.array_equal(x, y) for x, y in zip(np_a, np_b)) and stream_a is stream_b


@functools.cache
def attribute_names(code: types.CodeType) -> frozenset[str] | None:
    """The attribute names a code object and the code nested in it load, store or delete (`self.affine1`), or None
    where it may reach attributes by a computed name (`getattr`, `setattr`, `vars`, `__dict__`)."""
    names = set()
    for i in dis.get_instructions(code):
        if i.opname in ("LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"):
            names.add(i.argval)
        elif i.opname in ("LOAD_GLOBAL", "LOAD_NAME") and i.argval in ("getattr", "setattr", "vars"):
            return None
    if "__dict__" in names:
        return None
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            nested = attribute_names(const)
            if nested is None:
                return None
            names |= nested
    return frozenset(names)


@functools.cache
def loaded_globals(code: types.CodeType) -> frozenset[str]:
    """The global names a code object and the functions, lambdas and comprehensions nested in it load. Not
    co_names: it also holds attribute and method names, so `optimizer.step()` would guard a global `step`."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= loaded_globals(const)
    return frozenset(names)


class StateGuard:
    """The values reachable from `roots` now, and `changed()` to say which one differs later."""

    def __init__(self, roots: list):
        self.items: list[tuple[dict, object, object, str]] = []  # (dict, key, value, description)
        self.cells: list[tuple[types.CellType, object, str]] = []
        self.positions: list[tuple[list, int, object, str]] = []  # (list, index, value, description)
        self.lengths: list[tuple[dict | list, int, str]] = []
        self.attributes: list[tuple[object, str, object, str]] = []  # (class or __slots__ object, name, value, what)
        self.contents: list[tuple[object, object, str]] = []  # (set or numpy array, a copy of its contents, what)
        self.iterators: list[str] = []  # where an iterator or generator was met (its state is consumed by next())
        self.snapshots: list[tuple[dict | list, dict | list]] = []  # (container, a shallow copy) for restore()
        self.constants: list[tuple[dict, object, object]] = []  # (dict, key, value) a replay sets again
        self.flags: list[tuple[Tensor, bool, str]] = []  # (a tensor met, its requires_grad, where it was met)
        self.flipped: dict[int, tuple[Tensor, bool]] = {}  # id -> (a tensor whose flag the run set, the old flag)
        self._seen: dict[int, object] = {}  # id -> object, kept alive so ids stay unique while walking
        self._names: set[str] | None = set()  # attribute names the code walked uses (None: any)
        self._deferred: list[tuple[str, list | dict, str, type]] = []  # (name, value, what, owner's class)
        self._modules: list[types.ModuleType] = []  # the user's modules met (a config module read as config.LR)
        for root in roots:
            self._walk(root, type(root).__name__)
        self._walk_named()
        self._walk_modules()
        del self._seen, self._names, self._deferred, self._modules

    def _walk_named(self) -> None:
        """Walk each deferred attribute once the code walked names it; the methods that code names on a deferred
        attribute's owner count as code walked (`opt.step()` names `state` through `Optimizer.step`). Those never
        named are not guarded (data the caller keeps), but put back if the trace is abandoned."""
        scanned: set[int] = set()
        while self._deferred:
            found = True
            while found and self._names is not None:  # until the methods named name no other method
                found = False
                for cls in {cls for *_, cls in self._deferred}:
                    for name in list(self._names or ()):
                        fn = getattr(cls, name, None)
                        if isinstance(fn, types.FunctionType) and id(fn) not in scanned and self._names is not None:
                            scanned.add(id(fn))
                            names = attribute_names(fn.__code__)
                            self._names = None if names is None else self._names | names
                            found = True
            named = [x for x in self._deferred if self._names is None or x[0] in self._names]
            if not named:
                break
            self._deferred = [x for x in self._deferred if x not in named]
            for _, value, what, _ in named:
                self._walk(value, what)
        for _, value, _, _ in self._deferred:
            if id(value) not in self._seen:
                self._seen[id(value)] = value
                self.snapshots.append((value, list(value) if type(value) is not dict else dict(value)))
        self._random_states = global_random_states()

    def changed_by_run(self) -> str | None:
        """After a trace: what the function changed while it ran (its own state, or a global random draw), besides
        the constants it set (set_constants)."""
        if self.iterators:
            return f"an iterator or generator ({self.iterators[0]}), which next() advances"
        if not equal_random_states(self._random_states, global_random_states()):
            return "the global random state (random, numpy.random, or graphc's manual_seed / set_rng_state)"
        return self.changed({(id(d), key) for d, key, _ in self.constants}, self.flipped)

    def set_constants(self, assigned: list[tuple]) -> None:
        """Note the items a run changed from one constant (bool, str or None) to another, as `model.train()` at the
        top of a training step sets `training`: a replay sets them again (redo_constants), and their old values
        stay guarded, so the run replays whenever it starts from the state it was traced from."""
        self.constants = [(d, key, new) for d, key, old, new in assigned
                          if type(old) in CONSTANTS and type(new) in CONSTANTS]
        self.flipped = {id(t): (t, before) for t, before, _ in self.flags if t.requires_grad != before}

    def redo_constants(self) -> None:
        for d, key, value in self.constants:
            d[key] = value
        for t, before in self.flipped.values():  # `p.requires_grad = False` freezing a critic (a GAN's step)
            t.requires_grad = not before

    def requires_grad_before(self, t: Tensor) -> bool:
        """t's requires_grad when the run started (a run may set it; a replay sets it again)."""
        flipped = self.flipped.get(id(t))
        return t.requires_grad if flipped is None else flipped[1]

    def changed(self, skipped: set = frozenset(), flipped: dict | None = None) -> str | None:
        """What differs from when the guard was made (a description for logs), or None. `skipped`: (id(dict),
        key) of items not compared; `flipped`: ids of tensors whose requires_grad is not compared."""
        for t, before, what in self.flags:
            if t.requires_grad != before and (flipped is None or id(t) not in flipped):
                return f"requires_grad of a tensor of shape {list(t.shape)} in {what}: {before} -> {not before}"
        for d, key, value, what in self.items:
            current = d.get(key, MISSING)
            if current is not value and not equal(current, value) and (id(d), key) not in skipped:
                return f"{what}: {_short(value)} -> {_short(current)}"
        for container, length, what in self.lengths:
            if len(container) != length:
                return f"{what}: {length} -> {len(container)} items"
        for items, i, value, what in self.positions:
            if items[i] is not value and not equal(items[i], value):
                return f"{what}: {_short(value)} -> {_short(items[i])}"
        for cell, value, what in self.cells:
            current = cell_value(cell)
            if current is not value and not equal(current, value):
                return f"{what}: {_short(value)} -> {_short(current)}"
        for obj, name, value, what in self.attributes:
            current = getattr(obj, name, MISSING)
            if current is not value and not equal(current, value):
                return f"{what}: {_short(value)} -> {_short(current)}"
        for container, copy, what in self.contents:
            if not (np.array_equal(container, copy, equal_nan=container.dtype.kind in "fc")
                    if type(container) is np.ndarray else container == copy):
                return f"the contents of {what}"
        return None

    def _walk(self, obj, what: str) -> None:
        if type(obj) in VALUES or id(obj) in self._seen or len(self._seen) >= MAX_OBJECTS:
            return
        self._seen[id(obj)] = obj
        if isinstance(obj, collections.abc.Iterator):  # next() at a replay would not run: traced on every call
            self.iterators.append(what)
            return
        if type(obj) is np.ndarray:  # (a global array read into the graph: its values are baked in)
            if obj.size <= MAX_ARRAY and obj.dtype != object:
                self.contents.append((obj, obj.copy(), f"a numpy array in {what}"))
            return
        if isinstance(obj, type):
            if not library(obj):  # a config class: its attributes, read as Cfg.k
                for cls in obj.__mro__:
                    if not library(cls):
                        self._class(cls)
            return
        if isinstance(obj, Tensor):  # its values the plan reads at run time; requires_grad shapes the trace
            self.flags.append((obj, obj.requires_grad, what))
            return
        if isinstance(obj, types.ModuleType):
            if user_module(obj):
                self._modules.append(obj)
            return
        if isinstance(obj, (Generator, np.generic, types.BuiltinFunctionType)):
            return  # values (a generator's stream) that the plan reads at run time: not guarded
        from .compile import CompiledFunction

        if isinstance(obj, CompiledFunction):
            self._walk(obj.fn, what)
        elif isinstance(obj, types.FunctionType):
            self._function(obj)
        elif isinstance(obj, types.MethodType):
            self._walk(obj.__func__, what)
            self._walk(obj.__self__, what)
        elif isinstance(obj, functools.partial):
            for x in (obj.func, *obj.args, *obj.keywords.values()):
                self._walk(x, what)
        elif isinstance(obj, dict):
            self._dict(obj, what)
        elif isinstance(obj, (list, collections.deque)):
            self._list(obj, what)
        elif isinstance(obj, (set, frozenset)):
            if len(obj) <= MAX_ITEMS:
                self.contents.append((obj, frozenset(obj), f"a set in {what}"))
        elif isinstance(obj, tuple):
            for x in obj:
                self._walk(x, what)
        elif not library(type(obj)) or hasattr(obj, "__dict__"):
            if hasattr(obj, "__dict__"):
                self._dict(vars(obj), type(obj).__name__, owner=type(obj))
            for cls in type(obj).__mro__:
                if not library(cls):
                    for name in vars(cls).get("__slots__", ()):
                        if isinstance(name, str) and name not in ("__dict__", "__weakref__"):
                            self._attribute(obj, name, f"{name} of {type(obj).__name__}")
                    self._class(cls)

    def _class(self, cls: type) -> None:
        """A user class's own attributes (class-level settings read through the class or an instance)."""
        for name, attr in vars(cls).items():
            if not (name.startswith("__") and name.endswith("__")) and not isinstance(attr, types.MemberDescriptorType):
                self._attribute(cls, name, f"{name} of class {cls.__name__}")

    def _attribute(self, obj, name: str, what: str) -> None:
        value = getattr(obj, name, MISSING)
        self.attributes.append((obj, name, value, what))
        self._walk(value, what)

    def _function(self, fn: types.FunctionType) -> None:
        if library(fn):
            return
        names = attribute_names(fn.__code__)
        self._names = None if names is None or self._names is None else self._names | names
        name = fn.__qualname__
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            value = cell_value(cell)
            if value is MISSING:
                continue
            self.cells.append((cell, value, f"{var} (a variable {name} closes over)"))
            self._walk(value, var)
        for var in sorted(loaded_globals(fn.__code__)):
            if var in fn.__globals__:
                self._item(fn.__globals__, var, f"global {var} (read by {name})")
        for defaults in ("__defaults__", "__kwdefaults__"):  # guarded as attributes: `f.__defaults__ = ...` too
            self._attribute(fn, defaults, f"the defaults of {name}")

    def changed_floats(self) -> list[tuple[dict, object]]:
        """The items holding a float then and now, with another value (a learning rate on a schedule), or a tuple
        of numbers whose floats changed, its other numbers not (Adam's betas under a momentum cycle)."""
        return [(d, key) for d, key, value, _ in self.items if floats_changed(value, d.get(key))]

    def assignments(self) -> list[tuple[dict, object, object, object]]:
        """The items a run set (a changed value or a new key) in the dicts walked: attributes of objects, items of
        dicts, globals: (dict, key, old value or MISSING, new value). `self.loss = loss` in a trainer's step is one."""
        seen, out = set(), []
        changed = [(d, key, old) for d, key, old, _ in self.items] + [
            (d, key, snapshot.get(key, MISSING)) for d, snapshot in self.snapshots if type(d) is dict for key in d]
        for d, key, old in changed:
            new = d.get(key, MISSING)
            if new is not MISSING and new is not old and not equal(new, old) and (id(d), key) not in seen:
                seen.add((id(d), key))
                out.append((d, key, old, new))
        return out

    def forget(self, assigned: list[tuple]) -> None:
        """Stop guarding items that every replay sets again (side effects redone after each replay)."""
        keys = {(id(d), key) for d, key, *_ in assigned}
        grown = {id(d) for d, *_ in assigned}
        self.items = [item for item in self.items if (id(item[0]), item[1]) not in keys]
        self.lengths = [(c, len(c) if id(c) in grown else n, what) for c, n, what in self.lengths]

    def restore(self) -> None:
        """Put back every value recorded (a trace that is abandoned must leave no proxy in user state, such as
        optimizer moments created lazily by a first Adam step): items, list contents and closure cells."""
        for container, snapshot in self.snapshots:
            if type(container) is not dict:
                if len(container) != len(snapshot) or any(a is not b for a, b in zip(container, snapshot)):
                    container.clear()
                    container.extend(snapshot)
            else:
                for key in [k for k in container if k not in snapshot]:
                    del container[key]
        for d, key, value, _ in self.items:
            if d.get(key, MISSING) is not value:
                d[key] = value
        for cell, value, _ in self.cells:
            if cell_value(cell) is not value:
                cell.cell_contents = value
        for obj, name, value, _ in self.attributes:
            if getattr(obj, name, MISSING) is not value and value is not MISSING:
                setattr(obj, name, value)

    def _dict(self, d: dict, what: str, owner: type | None = None) -> None:
        """A dict's keys and items. For an object's __dict__ (`owner`: its class), a list attribute of a user object
        and per-tensor state (a dict keyed by tensors: an optimizer's `state`) are walked only if the code walked
        names them (`_walk_named`): until then only their identity is guarded. `self.saved_log_probs`, which the
        caller appends to on every call and the compiled forward never reads (REINFORCE's policy), and LBFGS's
        counters, which its step() changes between the evaluations of a compiled closure that only calls
        zero_grad(), are the caller's data, not guards."""
        if len(d) > MAX_ITEMS:
            return
        self.lengths.append((d, len(d), f"the keys of {what}"))
        self.snapshots.append((d, dict(d)))
        for key in list(d):
            label = f"{key} of {what}" if type(key) is str else f"an item of {what}"
            value = d[key]
            if owner is not None and type(key) is str and (
                    isinstance(value, (list, collections.deque)) and not library(owner) or
                    type(value) is dict and value and all(isinstance(k, Tensor) for k in value)):
                self.items.append((d, key, value, label))
                if id(value) not in self._seen:
                    self._deferred.append((key, value, label, owner))
            else:
                self._item(d, key, label)

    def _list(self, items: list | collections.deque, what: str) -> None:
        if len(items) > MAX_ITEMS:
            return
        self.lengths.append((items, len(items), f"the length of a list in {what}"))
        self.snapshots.append((items, list(items)))
        for i, x in enumerate(items):
            self.positions.append((items, i, x, f"item {i} of a list in {what}"))
            self._walk(x, what)

    def _walk_modules(self) -> None:
        """The attributes of the user's modules that the code walked names (`config.LR` guards LR's value, as
        torch.compile guards a module's globals); the code could read any (`getattr`): then the module's numbers
        and strings."""
        for module in self._modules:
            d = vars(module)
            names = [k for k, v in d.items() if type(v) in VALUES] if self._names is None else self._names
            for name in sorted(n for n in names if n in d and not n.startswith("__")):
                self._item(d, name, f"{name} of module {module.__name__}")

    def _item(self, d: dict, key, what: str) -> None:
        value = d[key]
        self.items.append((d, key, value, what))
        self._walk(value, what)


def user_module(module: types.ModuleType) -> bool:
    """Whether a module is the user's own (not the standard library's, nor an installed package's)."""
    top = module.__name__.partition(".")[0]
    if top in LIBRARIES or top in sys.stdlib_module_names:
        return False
    path = getattr(module, "__file__", None) or ""
    return "site-packages" not in path and "dist-packages" not in path


def held(obj) -> Callable[[], object]:
    """A reference that returns obj while it lives: weak where obj allows it, else strong. Either way obj's id is
    never another object's while the guard holding it lives, so an identity guard cannot match a newcomer."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def function_contents(fn: types.FunctionType) -> tuple:
    """What makes two functions with one code object compute the same: closure contents and defaults."""
    cells = tuple(cell_value(cell) for cell in fn.__closure__ or ())
    return cells + (fn.__defaults__, tuple((fn.__kwdefaults__ or {}).items()))


def cell_value(cell: types.CellType):
    """A closure cell's contents, or MISSING while the variable is unbound."""
    try:
        return cell.cell_contents
    except ValueError:
        return MISSING


def plain_object(x) -> bool:
    """An instance of a user's class (not a function, class or module): guarded by its type and attributes."""
    return hasattr(x, "__dict__") and not library(type(x)) and not isinstance(
        x, (type, types.ModuleType, types.FunctionType, types.MethodType))


class ArgumentGuard:
    """The non-tensor, non-number arguments of a call: each must be the very object the trace saw (held by
    `held`), except functions, bound methods and instances of user classes. A function is guarded by its code
    object (part of the call's signature) and its closure contents and defaults, so a fresh lambda or closure per
    call replays when they are the same and traces again when they differ; a bound method by its function and the
    identity of its object; a user object (a config) by its type (in the signature) and its attributes, numbers by
    value and anything else by identity, so a fresh config per call with the same values replays."""

    def __init__(self, flat: list):
        self.checks: list[tuple[int, object, object]] = []  # (position, kind, expected)
        for i, x in enumerate(flat):
            kind = type(x)
            if kind is Tensor or kind in VALUES or as_number(x) is not x:  # numbers are in the signature
                continue
            if kind is types.FunctionType:
                self.checks.append((i, kind, function_contents(x)))
            elif kind is types.MethodType:
                self.checks.append((i, kind, held(x.__self__)))
            elif plain_object(x):
                self.checks.append((i, dict, (dict(vars(x)), frozenset())))
            else:
                self.checks.append((i, object, held(x)))

    def miss(self, flat: list) -> tuple[int, str] | None:
        """None when every argument is what the trace saw, else (position, what differs)."""
        for i, kind, expected in self.checks:
            x = flat[i]
            if kind is types.FunctionType:
                now = function_contents(x)
                if len(now) != len(expected) or not all(map(equal, now, expected)):
                    return i, f"closure contents or defaults of {x.__qualname__}: {_short(expected)} -> {_short(now)}"
            elif kind is types.MethodType:
                if expected() is not x.__self__:
                    return i, f"the object of method {x.__qualname__} (another {type(x.__self__).__name__})"
            elif kind is dict:
                now, (expected, assigned) = vars(x), expected
                if now.keys() - assigned != expected.keys():
                    return i, f"the attributes of a {type(x).__name__}: {sorted(expected)} -> {sorted(now)}"
                for key, value in expected.items():
                    if not equal(now[key], value):
                        return i, f"attribute {key} of a {type(x).__name__}: {_short(value)} -> {_short(now[key])}"
            elif expected() is not x:
                return i, f"another {type(x).__name__} object (guarded by identity)"
        return None

    def forget(self, flat: list, assigned: list[tuple]) -> None:
        """Attributes the function sets on an argument (side effects redone at each replay) are not guarded."""
        for k, (i, kind, expected) in enumerate(self.checks):
            if kind is dict:
                d = vars(flat[i])
                keys = frozenset(key for dd, key, *_ in assigned if dd is d)
                if keys:
                    self.checks[k] = (i, kind, ({a: v for a, v in expected[0].items() if a not in keys},
                                                expected[1] | keys))


def _short(value) -> str:
    """A value as a message shows it: numbers and strings by value, anything else by its type."""
    if value is MISSING:
        return "missing"
    text = repr(value) if type(value) in VALUES or type(value) is tuple else f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."
