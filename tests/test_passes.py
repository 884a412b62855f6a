"""Each graph pass on its own: dead code elimination, common subexpression elimination, constant folding, transposed
products, copies of products."""
from __future__ import annotations

import numpy as np

import graphc
from graphc import dtypes
from graphc.compiler.ir import Graph
from graphc.compiler.passes import (
    elide_copies,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    transpose_products,
)
from graphc.compiler.runtime import reference_values
from graphc.ops import OPS
from graphc.tensor import CPU

F32 = dtypes.float32


def _graph():
    g = Graph()
    x = g.add("input", None, (), {}, (3,), F32, CPU)
    return g, x


def _op(g, name, *inputs, **attrs):
    op = OPS[name]
    shape, dt = op.infer(*inputs, **attrs)
    return g.add("op", op, inputs, attrs, shape, dt, CPU)


def _sample(g, like):
    """rand_like(like) as the random op it records."""
    return _op(g, "sample", like, size=None, distribution="uniform", params=(0.0, 1.0), dtype=F32,
               generator=graphc.default_generator)


def test_dce_drops_unused_nodes_but_keeps_inputs_and_random_ops():
    g, x = _graph()
    used = _op(g, "exp", x)
    _op(g, "sin", used)  # dead
    y = g.add("input", None, (), {}, (3,), F32, CPU)  # unused input: kept, inputs are positional
    _sample(g, x)  # impure: kept, it advances the generator as eager does
    g.outputs = [used]
    eliminate_dead_code(g)
    assert [n.label for n in g.nodes] == ["input", "exp", "input", "sample"]
    assert y in g.inputs and [n.id for n in g.nodes] == [0, 1, 2, 3]


def test_cse_merges_equal_pure_ops_only():
    g, x = _graph()
    a, b = _op(g, "exp", x), _op(g, "exp", x)
    c = _op(g, "add", a, b)
    scaled2, scaled3 = _op(g, "mul", x, 2.0), _op(g, "mul", x, 3.0)  # different operands: kept apart
    r1 = _sample(g, x)
    r2 = _sample(g, x)
    g.outputs = [c, scaled2, scaled3, r1, r2, b]
    eliminate_common_subexpressions(g)
    assert [n.label for n in g.nodes].count("exp") == 1
    assert c.inputs == (a, a) and g.outputs[-1] is a
    assert [n.label for n in g.nodes].count("mul") == 2 and [n.label for n in g.nodes].count("sample") == 2
    x_value = np.array([0.0, 1.0, 2.0], np.float32)
    values = reference_values(g, [x_value])
    np.testing.assert_allclose(values[c], 2 * np.exp(x_value), rtol=1e-6)


def test_constant_folding_computes_constant_subgraphs():
    g, x = _graph()
    k = g.add("const", None, (), {}, (3,), F32, CPU, value=np.array([1.0, 2.0, 3.0], np.float32))
    k2 = _op(g, "mul", k, 2.0)
    k3 = _op(g, "exp", k2)
    out = _op(g, "add", x, k3)
    noise = _sample(g, k)  # impure: never folded
    g.outputs = [out, noise]
    fold_constants(g)
    eliminate_dead_code(g)
    assert k3.kind == "const" and out.kind == "op" and noise.kind == "op"
    np.testing.assert_allclose(k3.value, np.exp(np.array([2.0, 4.0, 6.0])), rtol=1e-6)
    assert "mul" not in [n.label for n in g.nodes]
    values = reference_values(g, [np.zeros(3, np.float32)])
    np.testing.assert_allclose(values[out], np.exp([2.0, 4.0, 6.0]), rtol=1e-6)


def test_passes_run_inside_compile():
    calls = []
    w = graphc.randn(4)

    @graphc.compile
    def f(x):
        a = (x * w).exp()
        b = (x * w).exp()  # CSE makes this the same node
        (x + 1).sin()  # dead
        return a + b

    x = graphc.randn(4)
    np.testing.assert_allclose(f(x).numpy(), 2 * np.exp(x.numpy() * w.numpy()), rtol=1e-6)
    graph = graphc.explain(f, x).graphs[0]
    calls = [n.label for n in graph.nodes if n.kind == "op"]
    assert calls == ["mul", "exp", "add"]


def test_a_product_read_only_transposed_is_the_product_of_the_transposed_operands():
    """(x^T g)^T, a linear layer's weight gradient, becomes g^T x: contiguous in the layout its readers use; a
    product also read untransposed, or returned, stays."""
    import torch

    g = Graph()
    x = g.add("input", None, (), {}, (5, 3), F32, CPU)
    grad = g.add("input", None, (), {}, (5, 4), F32, CPU)
    xt = _op(g, "permute", x, dims=(1, 0))
    product = _op(g, "matmul", xt, grad)  # [3, 4]
    same = _op(g, "sum_to", product, product)  # a reduction over no dims: a copy
    weight_grad = _op(g, "permute", same, dims=(1, 0))
    kept = _op(g, "matmul", grad, _op(g, "permute", grad, dims=(1, 0)))  # [5, 5], read as is below
    g.outputs = [_op(g, "mul", weight_grad, 2.0), _op(g, "add", _op(g, "permute", kept, dims=(1, 0)), kept)]
    transpose_products(g)
    assert product.shape == (4, 3) and product.inputs[1] is x and g.outputs[0].inputs[0] is product
    assert "sum_to" not in [n.label for n in g.nodes] and kept.shape == (5, 5) and kept.inputs[0] is grad
    a, b = np.random.randn(5, 3).astype(np.float32), np.random.randn(5, 4).astype(np.float32)
    values = reference_values(g, [a, b])
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(values[g.outputs[0]], ((at.T @ bt).T * 2).numpy(), rtol=1e-6)
    np.testing.assert_allclose(values[g.outputs[1]], ((bt @ bt.T).T + bt @ bt.T).numpy(), rtol=1e-6)


def test_a_copy_of_a_product_that_nothing_else_reads_is_the_product():
    """A weight's gradient delivered to .grad is a clone of a product: the product's buffer is its own, so the copy
    goes; a copy of a product that something else reads stays."""
    import torch

    g = Graph()
    x = g.add("input", None, (), {}, (5, 3), F32, CPU)
    w = g.add("input", None, (), {}, (3, 4), F32, CPU)
    product, shared = _op(g, "matmul", x, w), _op(g, "matmul", x, w)
    copied, kept = _op(g, "clone", product), _op(g, "clone", shared)
    g.outputs = [copied, kept, _op(g, "mul", shared, 2.0)]
    elide_copies(g)
    assert g.outputs[0] is product and g.outputs[1] is kept and kept.inputs[0] is shared
    a, b = np.random.randn(5, 3).astype(np.float32), np.random.randn(3, 4).astype(np.float32)
    values = reference_values(g, [a, b])
    np.testing.assert_allclose(values[g.outputs[0]], (torch.from_numpy(a) @ torch.from_numpy(b)).numpy(), rtol=1e-6)
