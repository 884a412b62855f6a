"""Topological order of a DAG without recursion, shared by autograd and the compiler IR."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

N = TypeVar("N", bound=Hashable)


def postorder(roots: Iterable[N], inputs_of: Callable[[N], Iterable[N]]) -> list[N]:
    """roots and everything reachable through inputs_of, each node after all of its inputs."""
    order, seen, stack = [], set(), [(r, False) for r in roots]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((x, False) for x in inputs_of(node) if x not in seen)
    return order
