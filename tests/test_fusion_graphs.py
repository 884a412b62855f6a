"""The fusion pass on hand-built IR graphs (as tests/test_passes.py tests the other passes): which nodes form each
group, of which kind, and the reasons it gives where it keeps nodes apart. Values are checked elsewhere (the
interpreter and cpu backends against torch); here the partition itself is the result."""
from __future__ import annotations

from graphc import dtypes
from graphc.compiler.fusion import Fusion, Group
from graphc.compiler.ir import Graph
from graphc.ops import OPS
from graphc.tensor import CPU

F32 = dtypes.float32


def _input(g: Graph, *shape):
    return g.add("input", None, (), {}, shape, F32, CPU)


def _op(g: Graph, name: str, *inputs, **attrs):
    op = OPS[name]
    shape, dt = op.infer(*inputs, **attrs)
    return g.add("op", op, inputs, attrs, shape, dt, CPU)


def partition(g: Graph) -> list[tuple[str, list[str]]]:
    fusion = Fusion(g)
    return [(item.kind, [n.op.name for n in item.nodes]) if isinstance(item, Group) else ("fallback", [item.op.name])
            for item in fusion.order()]


def test_an_elementwise_chain_with_broadcasting_is_one_group():
    g = Graph()
    x, b = _input(g, 4, 8), _input(g, 8)
    g.outputs = [_op(g, "exp", _op(g, "mul", _op(g, "add", x, b), 2.0))]
    assert partition(g) == [("elementwise", ["add", "mul", "exp"])]


def test_softmax_is_one_reduction_group():
    g = Graph()
    x = _input(g, 4, 8)
    m = _op(g, "amax", x, dim=(1,), keepdim=True)
    e = _op(g, "exp", _op(g, "sub", x, m))
    g.outputs = [_op(g, "div", e, _op(g, "sum", e, dim=(1,), keepdim=True))]
    assert partition(g) == [("reduction", ["amax", "sub", "exp", "sum", "div"])]


def test_matmul_takes_its_epilogue_and_not_a_reduction():
    g = Graph()
    x, w, b = _input(g, 4, 8), _input(g, 8, 16), _input(g, 16)
    h = _op(g, "relu", _op(g, "add", _op(g, "matmul", x, w), b))
    g.outputs = [h, _op(g, "sum", h, dim=(1,), keepdim=False)]
    assert partition(g) == [("matmul", ["matmul", "add", "relu"]), ("reduction", ["sum"])]
    assert any("does not fuse into a matmul epilogue" in r for r in Fusion(g).reasons)


def test_an_op_without_lowering_is_a_fallback_between_groups():
    g = Graph()
    x = _input(g, 4, 8)
    c = _op(g, "cumsum", _op(g, "exp", x), dim=1)
    g.outputs = [_op(g, "mul", c, 2.0)]
    assert partition(g) == [("elementwise", ["exp"]), ("fallback", ["cumsum"]), ("elementwise", ["mul"])]


def test_a_value_needed_after_a_global_reduction_needs_a_second_group():
    g = Graph()
    x = _input(g, 4, 8)
    rows = _op(g, "sum", x, dim=(1,), keepdim=False)
    total = _op(g, "mean", rows, dim=(0,), keepdim=False)
    g.outputs = [_op(g, "sub", rows, total)]
    fusion = Fusion(g)
    assert [(grp.kind, [n.op.name for n in grp.nodes]) for grp in fusion.groups] == [
        ("reduction", ["sum", "mean"]), ("elementwise", ["sub"])]
    assert any("second pass" in r for r in fusion.reasons)
    assert fusion.groups[0].global_reductions == [total]


def test_a_transposed_in_kernel_value_is_not_read_in_the_same_kernel():
    g = Graph()
    x = _input(g, 4, 4)
    e = _op(g, "exp", x)
    g.outputs = [_op(g, "add", _op(g, "permute", e, dims=(1, 0)), 1.0)]
    assert partition(g) == [("elementwise", ["exp"]), ("elementwise", ["add"])]
    assert any("reorders elements" in r for r in Fusion(g).reasons)


def test_a_copy_of_a_transposed_value_is_stored_through_the_permutation():
    g = Graph()
    x = _input(g, 4, 4)
    e = _op(g, "exp", x)
    g.outputs = [_op(g, "clone", _op(g, "permute", e, dims=(1, 0)))]
    fusion = Fusion(g)
    assert [[n.op.name for n in grp.nodes] for grp in fusion.groups] == [["exp", "clone"]]
    assert list(fusion.groups[0].permuted) == [g.outputs[0]]


def test_a_per_row_consumer_absorbs_a_row_shaped_group_as_per_row_values():
    """mul(cast(any(x > 0.5)), sum(x, 1)) with x of [6, 6]: the cast's group [6] joins the sum's kernel as one value
    per row. Aligned by broadcasting, as the groups an elementwise consumer absorbs are, it varied along the reduced
    dim instead (the rows and the reduced dim have the same size), and the kernel read the wrong element."""
    g = Graph()
    x = _input(g, 6, 6)
    flag = _op(g, "cast", _input(g, 6), dtype=F32)
    total = _op(g, "sum", x, dim=(1,), keepdim=False)
    g.outputs = [_op(g, "mul", flag, total)]
    fusion = Fusion(g)
    (group,) = fusion.groups
    assert [n.op.name for n in group.nodes] == ["cast", "sum", "mul"]
    assert group.aligned[flag] == group.aligned[total] == (6, 1)



def test_a_value_read_only_for_its_shape_is_neither_stored_nor_loaded():
    """sum_to(g, like) reads like's shape alone (Op.shape_inputs): like's kernel does not store it for that, and the
    kernel computing the sum_to takes no pointer to it (a layer norm's forward stored five such values)."""
    g = Graph()
    x = _input(g, 4, 8)
    e = _op(g, "exp", x)
    like = _op(g, "tanh", e)
    kept = _op(g, "cumsum", e, dim=1)  # computed from the first kernel: the sum_to cannot join it
    g.outputs = [_op(g, "add", _op(g, "sum_to", _op(g, "mul", kept, 2.0), like), 1.0)]
    fusion = Fusion(g)
    first, last = fusion.group_of[like], fusion.group_of[g.outputs[0]]
    assert first is not last and first.outputs == [e]
    assert [key[0] for key in last.loads] == [kept]


def test_an_output_equal_to_another_member_is_stored_once():
    """Copy propagation: sum_to of a gradient that already has its target's shape is its input's values, so the
    kernel stores the input once (for a matmul: the product BLAS writes anyway) and the plan hands that array out
    for both; a graph output is stored on its own."""
    g = Graph()
    x, w = _input(g, 4, 8), _input(g, 8, 8)
    product = _op(g, "matmul", x, w)
    same = _op(g, "sum_to", product, x)
    scaled = _op(g, "mul", product, 2.0)
    a = _op(g, "add", x, 1.0)
    once, twice = _op(g, "sum_to", a, x), None
    twice = _op(g, "sum_to", once, x)
    returned = _op(g, "sum_to", a, x)
    g.outputs = [_op(g, "cumsum", same, dim=1), _op(g, "cumsum", scaled, dim=1), _op(g, "cumsum", once, dim=0),
                 _op(g, "cumsum", twice, dim=1), returned]
    fusion = Fusion(g)
    mm, ew = fusion.group_of[product], fusion.group_of[a]
    assert mm.copies == {same: product} and mm.outputs == [product, scaled]
    assert ew.copies == {once: a, twice: a} and ew.outputs == [a, returned]
