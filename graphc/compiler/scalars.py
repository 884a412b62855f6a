"""Python numbers as runtime inputs of a plan, so a new value replays instead of tracing again.

A float argument (Python or numpy), and a float read from state that changed since the previous trace (a learning
rate in `param_groups`), is handed to the function as a *scalar proxy*: a 0-d float64 proxy tensor whose graph
input is read from the argument or the state item at each call. Ops on it are recorded like ops on a Python number
(torch's "wrapped number": it promotes as a Python scalar, see `Capture.record`); arithmetic between scalars is
recorded too, with its value computed as it is recorded, so `-lr` or `1 - lr * wd` stays a runtime value.

Where Python needs the value (`if k > 0`, `float(k)`, `math.cos(k)`, an attribute such as `dropout(p=k)`), the
value is handed over and the plan is guarded on it: the expression that was realised (`k > 0`, or `k` itself) must
evaluate to the same value at the next call, so only the decisions the trace made are guarded, as torch.compile
guards on symbolic expressions."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..tensor import Tensor
from .ir import Node, ancestors

FLOATS = (float, np.float64, np.float32, np.float16)
MISSING = object()


def number(value):
    """A numpy result of an op on numbers as the Python number it stands for."""
    return value.item() if isinstance(value, (np.generic, np.ndarray)) else value


def number_dtype(value) -> dtypes.dtype:
    """The dtype of a node holding a Python number's value exactly."""
    return dtypes.bool_ if isinstance(value, bool) else dtypes.int64 if isinstance(value, int) else dtypes.float64


def evaluate(node: Node, roots: dict[Node, object]) -> object:
    """The value of a scalar node from the values of the scalar inputs it depends on (each op's numpy forward on
    Python numbers: float64 arithmetic, as Python's)."""
    values = dict(roots)
    for n in ancestors([node]):
        if n not in values:
            values[n] = number(n.op.forward(*[values[x] if type(x) is Node else x for x in n.inputs], **n.attrs))
    return values[node]


class ScalarInputs:
    """The scalars lifted for one trace: each has a holder (a real 0-d float64 tensor, the graph input), and a
    source read at each call: ('argument', position), ('item', dict, key) or ('item', dict, key, index in the tuple
    it holds). `guards` are (node, value) pairs:
    expressions Python realised during the trace, which must evaluate the same at the next call."""

    def __init__(self):
        self.holders: list[tuple[Tensor, tuple]] = []
        self.guards: list[tuple[Node, object]] = []
        self.nodes: dict[Node, Tensor] = {}  # input node -> its holder
        self.proxies: list[Tensor] = []  # the proxies the function was handed (given their numbers after the trace)

    def lift(self, capture, value, source: tuple) -> Tensor:
        """A scalar proxy for value, read from source at each call."""
        holder = Tensor._make(np.array(float(value), np.float64), dtypes.float64)
        node = capture.node_of(holder)
        capture.weak[node] = float(value)
        self.holders.append((holder, source))
        self.nodes[node] = holder
        proxy = capture._proxy(node)
        self.proxies.append(proxy)
        return proxy

    def read(self, flat: list) -> list | None:
        """This call's values of the sources, or None where one is no longer a float."""
        values = []
        for _, source in self.holders:
            value = flat[source[1]] if source[0] == "argument" else source[1].get(source[2], MISSING)
            if len(source) == 4:  # ("item", dict, key, i): a float inside a tuple (Adam's betas)
                value = value[source[3]] if type(value) is tuple and len(value) > source[3] else MISSING
            if type(value) not in FLOATS:
                return None
            values.append(float(value))
        return values

    def value(self, node: Node):
        """A scalar node's value for the call whose values the holders hold (a number the function returns)."""
        return evaluate(node, {n: holder._data.item() for n, holder in self.nodes.items()})

    def miss(self, flat: list, names: list[str]) -> str | None:
        """None when the call's scalars pass every guard (then the holders take their values), else why not."""
        values = self.read(flat)
        if values is None:
            return "a float the plan reads at run time is no longer a float"
        roots = dict(zip(self.nodes, values))
        for node, value in self.guards:
            now = evaluate(node, roots)
            if now != value:
                if node in self.nodes:
                    source = self.holders[list(self.nodes).index(node)][1]
                    what = (f"argument {names[source[1]]}" if source[0] == "argument"
                            else f"the state item {source[2]!r}" + (f"[{source[3]}]" if len(source) == 4 else ""))
                    return f"{what}, whose value the function uses in Python: {value!r} -> {now!r}"
                return f"{node.label}(...) at {node.where}, which the function uses in Python: {value!r} -> {now!r}"
        for (holder, _), value in zip(self.holders, values):
            holder._data = np.array(value, np.float64)
        return None
