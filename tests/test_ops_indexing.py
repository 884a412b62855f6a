"""Indexing, joins and einsum beyond the op table: shared memory of views, writes through an index, gradients of writes,
canonical (shape-generic) attrs, and refusals."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch

import graphc
from graphc.ops.indexing import parse_index


def test_basic_index_views_share_memory():
    base = graphc.zeros(4, 5)
    views = [base[1], base[:, 1:4:2], base[..., -1], base[None, 2:], base.T[0], base.split(2, 1)[1], base.chunk(2)[0]]
    for i, v in enumerate(views):
        v.fill_(float(i + 1))
    expected = torch.zeros(4, 5)
    for i, v in enumerate([expected[1], expected[:, 1:4:2], expected[..., -1], expected[None, 2:], expected.T[0],
                           expected.split(2, 1)[1], expected.chunk(2)[0]]):
        v.fill_(float(i + 1))
    assert_close(base, expected)
    assert views[0].data_ptr() == base.data_ptr() + 5 * 4


def test_advanced_index_is_a_copy():
    base = graphc.zeros(3, 4)
    picked = base[[0, 2]]
    picked.fill_(1.0)
    assert not base.numpy().any()


@pytest.mark.parametrize("key", [
    (slice(1, None), 0), (Ellipsis, slice(None, None, 2)), (slice(None), [3, 0, 3]), "mask", (1, slice(0, 2)), -1,
    (1, 2), (-1, -4),
])
def test_setitem_matches_torch_and_is_visible_through_views(key):
    ours, theirs = graphc.randn(3, 4), None
    theirs = to_torch(ours).clone()
    if key == "mask":
        key = ours > 0
        tkey = theirs > 0
    else:
        tkey = key
    view, tview = ours[:], theirs[:]
    view[key] = 7.0
    tview[tkey] = 7.0
    assert_close(ours, theirs)
    value = graphc.randn(*ours[key].shape)
    ours[key] = value
    theirs[tkey] = to_torch(value)
    assert_close(ours, theirs)


def test_setitem_autograd_matches_torch():
    x, v = graphc.randn(3, 4, requires_grad=True), graphc.randn(4, requires_grad=True)
    tx, tv = to_torch(x), to_torch(v)
    y, ty = x * 2, tx * 2
    y[1] = v
    ty[1] = tv
    y[:, [0, 3]] = 0.5
    ty[:, [0, 3]] = 0.5
    y[2, 1] = v[2] * 3
    ty[2, 1] = tv[2] * 3
    w = torch.randn(3, 4)
    (y * graphc.tensor(w.numpy())).sum().backward()
    (ty * w).sum().backward()
    assert_close(y, ty)
    assert_close(x.grad, tx.grad)
    assert_close(v.grad, tv.grad)


def test_repeated_indices_accumulate_gradients():
    x = graphc.randn(3, requires_grad=True)
    tx = to_torch(x)
    idx = [0, 2, 0, 0]
    x[idx].sum().backward()
    tx[idx].sum().backward()
    assert_close(x.grad, tx.grad)


def test_slice_attrs_stay_shape_generic():
    x = graphc.zeros(4, 5, 6)
    items, tensors = parse_index(x, (Ellipsis, slice(1, None), None))
    assert items == ((None, None, None), (None, None, None), (1, None, None), None) and tensors == []
    assert parse_index(x, (0, Ellipsis))[0] == (0,)


def test_index_refusals_name_the_op():
    x = graphc.zeros(2, 3)
    with pytest.raises(IndexError, match="(?s)getitem.*index 5 is out of range.*test_ops_indexing.py"):
        x[:, 5]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match=r"index: the shape of the mask \[3\] does not match the shape \[2\]"):
        x[graphc.ones(3, dtype=graphc.bool)]
    with pytest.raises(IndexError, match="integer or bool"):
        x[graphc.ones(2)]
    with pytest.raises(RuntimeError, match=r"(?s)cat: sizes of tensors must match.*\[2, 3\] and \[3, 2\]"):
        graphc.cat([x, graphc.zeros(3, 2)], 1)
    with pytest.raises(RuntimeError, match="stack"):
        graphc.stack([x, graphc.zeros(3, 2)])
    with pytest.raises(RuntimeError, match="split sizes"):
        x.split([1, 1], dim=1)
    with pytest.raises(RuntimeError, match="gather: index 5 is out of bounds for dimension 1 with size 3"):
        graphc.gather(x, 1, graphc.tensor([[0, 5]]))
    with pytest.raises(RuntimeError, match=r"gather: Size does not match at dimension 0: index size 3 exceeds"):
        graphc.gather(x, 1, graphc.zeros(3, 1, dtype=graphc.int64))


def test_gather_matches_torch_on_larger_random_input():
    x = graphc.randn(4, 6, 5, requires_grad=True)
    index = graphc.randint(0, 6, (3, 8, 2))
    tx = to_torch(x)
    out, tout = x.gather(1, index), tx.gather(1, to_torch(index))
    assert_close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    assert_close(x.grad, tx.grad)


def test_cat_promotes_and_casts_gradients_back():
    a = graphc.randn(2, 3, requires_grad=True)
    b = graphc.randn(1, 3, dtype=graphc.float64, requires_grad=True)
    ta, tb = to_torch(a), to_torch(b)
    out, tout = graphc.cat([a, b]), torch.cat([ta, tb])
    assert out.dtype is graphc.float64 and tout.dtype == torch.float64
    out.sum().backward()
    tout.sum().backward()
    assert a.grad.dtype is graphc.float32 and b.grad.dtype is graphc.float64
    assert_close(a.grad, ta.grad)
    assert_close(b.grad, tb.grad)


def test_split_and_chunk_shapes_match_torch():
    x = graphc.randn(7, 2)
    tx = to_torch(x)
    for ours, theirs in [(x.split(3), tx.split(3)), (x.chunk(3), tx.chunk(3)), (x.chunk(4), tx.chunk(4)),
                         (graphc.split(x, [2, 5]), torch.split(tx, [2, 5]))]:
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_close(a, b)
    assert np.shares_memory(x.split(3)[1].numpy(), x.numpy())


MIXED_KEYS = [([0, 1], 0, [1, 2]), ([0, 1], slice(None), 0, [1, 2]), (0, [1, 2], [0, 3]),
              (slice(None), [1, 2], None, [0, 3]), (None, [[0], [1]], 1, [0, 3]), (Ellipsis, [4, 0, 4]),
              (slice(1, None, 2), Ellipsis, None, -1)]


@pytest.mark.parametrize("key", MIXED_KEYS, ids=[str(k) for k in MIXED_KEYS])
def test_mixed_basic_and_advanced_indices_match_torch(key):
    x = graphc.randn(2, 3, 4, 5, requires_grad=True)
    tx = to_torch(x)
    out, tout = x[key], tx[key]
    assert_close(out, tout)
    w = torch.randn(tout.shape)
    (out * graphc.tensor(w.numpy())).sum().backward()
    (tout * w).sum().backward()
    assert_close(x.grad, tx.grad)


def test_einsum_shapes_and_refusals_match_torch():
    a, b = graphc.randn(2, 3, 4), graphc.randn(4, 5)
    ta, tb = to_torch(a), to_torch(b)
    for equation, ours, theirs in [("...j,jk->k...", (a, b), (ta, tb)), ("bij->ji", (a,), (ta,)),
                                   ("i,i", (b[0], b[1]), (tb[0], tb[1])), ("ij,kj", (a[0], a[1]), (ta[0], ta[1]))]:
        assert_close(graphc.einsum(equation, *ours), torch.einsum(equation, *theirs), rtol=1e-5)
    with pytest.raises(RuntimeError, match=r"(?s)einsum: label 'j' has sizes 4 and 3.*Tensor\[3, 4\]"):
        graphc.einsum("ij,jk->ik", a[0], a[0])


def test_einsum_gradient_where_a_label_broadcasts():
    """A contracted label of size 1 in one operand and n in another: torch broadcasts it, gradients included."""
    for equation, shapes in (("ij,kj->ik", [(4, 3), (4, 1)]), ("bij,bjk->bik", [(2, 3, 1), (1, 4, 5)])):
        arrays = [np.random.RandomState(i).randn(*s).astype(np.float32) for i, s in enumerate(shapes)]
        ours = [graphc.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        (graphc.einsum(equation, *ours) ** 2).sum().backward()
        (torch.einsum(equation, *theirs) ** 2).sum().backward()
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_cov_and_corrcoef_of_one_variable_are_0d():
    x = np.random.RandomState(0).randn(1, 5).astype(np.float32)
    for fn in ("cov", "corrcoef"):
        ours, theirs = getattr(graphc, fn)(graphc.tensor(x)), getattr(torch, fn)(torch.tensor(x))
        assert ours.shape == theirs.shape == ()
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)


def _mask_writes(L):
    def zero_negatives(x, w):
        y = x * w
        y[y < 0] = 0.0
        return y.sum()

    def rows(x, w):
        y = x * w
        y[y.sum(1) > 0] = L.tensor([1.0, -1.0, 2.0])
        return y.sum()

    def from_a_weight(x, w):
        y = x * w
        y[x > 0.5] = w[0, 0]
        return y.sum()

    return [zero_negatives, rows, from_a_weight]


@pytest.mark.parametrize("case", range(3))
def test_mask_writes_of_one_value_compile_whole(case):
    """x[mask] = value with a mask over x's leading dims and one value (a number, a 0-d tensor, a row broadcast
    over what the mask leaves) is a masked fill, as torch does: values and gradients are torch's, and a compiled
    function holding it replays (it was a graph break on the mask's nonzero positions at every call)."""
    mine, theirs = graphc.compile(_mask_writes(graphc)[case]), _mask_writes(torch)[case]
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            x, w = rng.standard_normal((2, 4, 3)).astype(np.float32)
            gw, tw = graphc.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
            loss, expected = mine(graphc.tensor(x), gw), theirs(torch.tensor(x), tw)
            loss.backward()
            expected.backward()
            assert_close(loss, expected)
            assert_close(gw.grad, tw.grad)
    assert mine.num_traces == 1
