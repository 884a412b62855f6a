"""Aliasing and mutation: views, in-place updates, arguments sharing memory and writes through expanded views give
torch's values, gradients and errors, eagerly and compiled (numpy and interpret backends), on the call that traces
and on replays (graphc/compiler/functionalization.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc import nn

MODES = ["eager", "numpy", "interpret"]
RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((4,)).astype(np.float32)


def _tensor(L, array, requires_grad=False):
    return (torch.tensor if L is torch else graphc.tensor)(array.copy(), requires_grad=requires_grad)


def _as_tuple(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _runner(fn, mode: str):
    return fn if mode == "eager" else graphc.compile(fn, backend=mode)


def check_like_torch(program, arrays, mode: str, calls: int = 3, compiles: int = 1):
    """program(L, *tensors) run on graphc (eagerly or compiled) equals torch on every call: its results and its
    arguments afterwards (in-place updates of inputs land in them)."""
    run = _runner(lambda *args: program(graphc, *args), mode)
    for call in range(calls):
        args = [_tensor(graphc, a + call) for a in arrays]
        targs = [_tensor(torch, a + call) for a in arrays]
        got, want = _as_tuple(run(*args)), _as_tuple(program(torch, *targs))
        for g, w in zip(got + tuple(args), want + tuple(targs)):
            assert_close(g, w, atol=1e-6)
    if mode != "eager":
        assert run.num_compiles == compiles


# (name, program(L, *tensors), input arrays): each writes through an alias and reads another alias afterwards
PROGRAMS = {
    "view_read_after_base_written": (lambda L, x: (lambda y, v: (y.add_(1), v * 1)[1])(
        *(lambda y: (y, y.view(2, 6)))(x * 1)), [A]),
    "transpose_read_after_relu_": (lambda L, h: (lambda t: (h.relu_(), t.sum(0))[1])(h.transpose(0, 1)), [A]),
    "column_of_input_scaled": (lambda L, x: (x[:, 0].mul_(2), x.sum(1))[1], [A]),
    "flat_view_of_input_updated": (lambda L, w: (w.view(-1).add_(1), w * 1)[1], [A]),
    "data_slice_written": (lambda L, p: (p.data.__setitem__(slice(0, 2), 0), p * 2)[1], [A]),
    "detached_alias_scaled": (lambda L, x: (x.detach().mul_(3), x + 0)[1], [A]),
    "clone_div_clamp": (lambda L, x: (lambda v: (v.div_(2.0), v.clamp_(min=-1.0), v)[2])(x.clone()), [A]),
    "in_place_returns_the_argument": (lambda L, x: x.add_(1).mul_(2), [A]),
    "columns_filled_by_copy_": (lambda L, a, b: (lambda out: (out[:, :4].copy_(a), out[:, 4:].copy_(a * 2),
                                                             out[0, 2:6].add_(b), out)[3])(L.zeros(3, 8)), [A, B]),
    "view_of_view_zeroed": (lambda L, x: (lambda y: (y[3:9].view(2, 3).zero_(), y.__setitem__(0, 7), x * 1)[2])(
        x.reshape(12)), [A]),
    "transposed_setitem_and_slice_sub_": (lambda L, x: (lambda t, s: (t.__setitem__((0, 1), 9), s.sub_(1),
                                                                      t.sum() + s.sum(), x * 1)[2:])(
        x.t(), x[1:, 1:]), [A]),
    "transposed_view_of_intermediate": (lambda L, x: (lambda h, v: (v[1].add_(3), h.mul_(2), v + 0, h)[2:])(
        *(lambda h: (h, h.T))(x * 2)), [A]),
    "expanded_clone_written_once": (lambda L, x: (lambda y: (y.__setitem__((0, 0), 5), y * 1)[1])(
        x[0].clone().expand(2, 4)), [A]),
    "expanded_input_written_once": (lambda L, x: (lambda y: (y.__setitem__((1, 0, 2), 5), y.sum(0))[1])(
        x.expand(2, 3, 4)), [A]),
    # a clone or an elementwise result keeps its operand's memory order (torch's preserve_format): reshaping a
    # transposed one copies, so a write through the reshape leaves it as it was; a contiguous one is aliased
    "clone_of_transpose_reshaped": (lambda L, x: (lambda y: (y.flatten().sub_(1), y.reshape(-1).mul_(3), y * 1)[1:])(
        x.t().clone()), [A]),
    "product_of_permute_reshaped": (lambda L, x: (lambda y: (y.reshape(12).add_(1), y * 1)[1])(
        x.t() * 2), [A]),
    "clone_of_contiguous_flattened": (lambda L, x: (lambda y: (y.flatten().add_(1), y * 1)[1])(x.clone()), [A]),
    "clone_of_expanded_flattened": (lambda L, x: (lambda y: (y.flatten().mul_(2), y * 1)[1])(
        x[None, :, :1].expand(2, 3, 4).clone()), [A]),
    "clone_of_strided_transposed_viewed": (lambda L, x: (lambda y: (y.view(-1).add_(1), y + 0)[1])(
        x[:, ::2].t().clone().t()), [A]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PROGRAMS)
def test_writes_through_aliases_like_torch(name, mode):
    program, arrays = PROGRAMS[name]
    check_like_torch(program, arrays, mode)


@pytest.mark.parametrize("mode", MODES)
def test_arguments_sharing_memory_see_each_others_writes(mode):
    """f(a, a[:]): the write lands in a and the value returned after it is fresh; the aliasing pattern is a guard,
    so a plan traced for separate arguments never replays for aliased ones, and the other way round."""
    def f(a, b):
        b.add_(1)
        return a * 1

    run = _runner(f, mode)
    for aliased in (True, False, True, False):
        a, ta = graphc.tensor(A.copy()), torch.tensor(A.copy())
        b, tb = (a[:], ta[:]) if aliased else (graphc.tensor(A.copy()), torch.tensor(A.copy()))
        assert_close(run(a, b), f(ta, tb))
        assert_close(a, ta)
        assert_close(b, tb)
    if mode != "eager":
        assert run.num_compiles == 2


@pytest.mark.parametrize("mode", MODES)
def test_argument_and_a_view_of_it(mode):
    """A column of x passed beside x: written through the column, read through x (as_strided of x in the graph)."""
    def f(x, col):
        col.mul_(2)
        return x.sum(0), col + 0

    run = _runner(f, mode)
    for call in range(3):
        x, tx = graphc.tensor(A + call), torch.tensor(A + call)
        for g, w in zip(run(x, x[:, 1]), f(tx, tx[:, 1])):
            assert_close(g, w)
        assert_close(x, tx)


def test_the_same_tensor_twice_is_not_confused_with_two_tensors():
    f = graphc.compile(lambda a, b: a.add_(1) + b, backend="numpy")
    for same in (True, False, True):
        a, ta = graphc.tensor(A.copy()), torch.tensor(A.copy())
        b, tb = (a, ta) if same else (graphc.tensor(B.copy()), torch.tensor(B.copy()))
        assert_close(f(a, b), ta.add_(1) + tb)
        assert_close(a, ta)


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_in_place_update_of_a_view_no_longer_runs_eagerly(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_like_torch(lambda L, x: (x.reshape(12).add_(1), x * 1)[1], [A], mode)


def _overlapping_add(L, a, b):
    a[0].expand(5, 4).add_(b)
    return a


@pytest.mark.parametrize("mode", MODES)
def test_in_place_op_on_an_expanded_view_is_refused_like_torch(mode):
    run = _runner(lambda a, b: _overlapping_add(graphc, a, b), mode)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor refers to a single memory "
                                           "location") as caught:
        _overlapping_add(torch, torch.tensor(A), torch.tensor(B))
    expected = str(caught.value).split(". ")[0]
    with pytest.raises(RuntimeError, match=expected) as caught:
        run(graphc.tensor(A), graphc.tensor(B))
    assert f"test_functionalization.py:{_overlapping_add.__code__.co_firstlineno + 1}" in str(caught.value)
    assert "clone()" in str(caught.value)


def test_fill_of_an_expanded_view_writes_like_torch():
    """torch fills an expanded tensor (one value per memory location is well defined); compiled, it runs eagerly."""
    def f(L, x):
        x[0].expand(2, 4).fill_(3)
        return x * 1

    check_like_torch(f, [A], "eager")
    with pytest.warns(RuntimeWarning, match="runs eagerly: filling an expanded tensor"):
        check_like_torch(f, [A], "numpy", compiles=0)


GRAD_PROGRAMS = {
    "scaled_column": lambda L, x, w: (lambda h: (h[:, 0].mul_(2), h)[1])(x * w),
    "add_on_temporary": lambda L, x, w: (x * 2 * w).add_(1.0),
    "clone_div_clamp": lambda L, x, w: (lambda v: (v.div_(2.0), v.clamp_(min=-1.0), v)[2])((x * w).clone()),
    "residual": lambda L, x, w: (lambda h: (h.__iadd__((h * 2).relu()), h)[1])(x * w),
    "view_read_after_base_scaled": lambda L, x, w: (lambda h, t: (h.mul_(3), t * 1)[1])(
        *(lambda h: (h, h.t()))(x * w)),
    "columns_filled_by_copy_": lambda L, x, w: (lambda out: (out[:, :4].copy_(x * w), out.__setitem__(
        (slice(None), slice(4, None)), w.tanh()), out)[2])(L.zeros(3, 8)),
    "flat_slice_zeroed": lambda L, x, w: (lambda h: (h.view(12).__setitem__(slice(2, 5), 0), h)[1])(x * w),
    "expanded_sum": lambda L, x, w: (x * w).sum(0).expand(3, 4) * 1,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backward_inside", [True, False], ids=["step", "outside"])
@pytest.mark.parametrize("name", GRAD_PROGRAMS)
def test_gradients_through_in_place_updates_like_torch(name, backward_inside, mode):
    """A training step (backward inside the compiled function) or a forward whose result's backward runs outside."""
    program = GRAD_PROGRAMS[name]
    results = {}
    for L in (torch, graphc):
        w = _tensor(L, B, requires_grad=True)

        def step(x, L=L, w=w):
            out = program(L, x, w)
            if backward_inside:
                (out * out).sum().backward()
                return out.detach(), w.grad
            return out
        run = step if L is torch else _runner(step, mode)
        results[L] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a compiled forward returning a tensor that requires grad re-traces
            for call in range(3):
                w.grad = None
                out = run(_tensor(L, A + call))
                if not backward_inside:
                    (out * out).sum().backward()
                    out = (out.detach(), w.grad)
                results[L].append(out)
    for got, want in zip(results[graphc], results[torch]):
        assert_close(got[0], want[0], atol=1e-5)
        assert_close(got[1], want[1], rtol=1e-4, atol=1e-4)


class Block(nn.Module):
    """Real-code style: an in-place residual, a half-scaled slice, optimizer writes to p.data."""

    def __init__(self):
        super().__init__()
        self.inp, self.mlp = nn.Linear(4, 6), nn.Linear(6, 6)

    def forward(self, x):
        h = self.inp(x)
        h += self.mlp(h.tanh()).relu()  # tanh saves its output, so torch allows the in-place residual
        h[:, :2] *= 0.5
        return h


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.mlp = torch.nn.Linear(4, 6), torch.nn.Linear(6, 6)

    def forward(self, x):
        h = self.inp(x)
        h += self.mlp(h.tanh()).relu()  # tanh saves its output, so torch allows the in-place residual
        h[:, :2] *= 0.5
        return h


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_training_step_with_in_place_residual_and_data_writes_matches_torch(mode):
    model, tmodel = Block(), TorchBlock()
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        p.data = graphc.tensor(tp.detach().numpy().copy())

    def update(params, lr):
        for p in params:
            p.data.add_(p.grad.data * -lr)  # optimizer-style write through .data
            p.data[0] = p.data[0].clamp(-1.0, 1.0)

    @graphc.compile(backend=mode)
    def step(x):
        model.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        with graphc.no_grad():
            update(model.parameters(), 0.1)
        return loss

    for call in range(4):
        x = A + call
        loss = step(graphc.tensor(x))
        tmodel.zero_grad()
        tloss = (tmodel(torch.tensor(x)) ** 2).mean()
        tloss.backward()
        with torch.no_grad():
            update(tmodel.parameters(), 0.1)
        assert_close(loss, tloss, rtol=1e-4, atol=1e-5)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p, tp, rtol=1e-4, atol=1e-5)
    assert step.num_compiles == 1


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_in_place_result_of_a_compiled_forward_backpropagates_outside(mode):
    f = graphc.compile(lambda x: (x * 2).add_(1.0), backend=mode)
    for _ in range(2):  # the trace, then a replay whose grad_fn runs the compiled backward
        x = graphc.tensor(A, requires_grad=True)
        tx = torch.tensor(A, requires_grad=True)
        y = f(x)
    (y * y).sum().backward()
    ty = (tx * 2).add_(1.0)
    (ty * ty).sum().backward()
    assert_close(y, ty)
    assert_close(x.grad, tx.grad)


def test_a_write_to_a_tensor_viewed_outside_the_function_runs_eagerly():
    """w and a view of it made outside the function are two inputs the graph cannot link: writing one and reading
    the other makes graphc warn and run eagerly (values as torch's), in either order."""
    w, tw = graphc.tensor(A.copy()), torch.tensor(A.copy())
    flat, tflat = w.view(-1), tw.view(-1)

    def write_then_read(w, flat):
        w.add_(1)
        return flat * 2

    def read_then_write(w, flat):
        out = flat * 2
        w.mul_(3)
        return out + flat

    for f in (write_then_read, read_then_write):
        run = graphc.compile(lambda: f(w, flat), backend="numpy")
        with pytest.warns(RuntimeWarning, match="runs eagerly: in-place update of a tensor of shape"):
            assert_close(run(), f(tw, tflat))
        assert_close(run(), f(tw, tflat))
        assert_close(w, tw)


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_reshape_of_an_argument_aliases_by_its_layout_at_each_call(mode):
    """reshape(-1) of a contiguous argument is a view (a write through it lands in the argument); of a transposed
    one it is a copy (the argument stays as it was), as in torch. Whether it aliases is decided on the argument's
    strides at trace time, so a non-contiguous layout is part of the guard: the plan traced for a contiguous
    argument never replays for a transposed one, and contiguous arguments of any size share one plan."""
    def program(L, x):
        x.reshape(-1).add_(1)
        return x * 2

    compiled = graphc.compile(lambda x: program(graphc, x), backend=mode)
    for shape, transposed in (((2, 3), False), ((3, 2), True), ((4, 3), False), ((2, 5), True), ((3, 2), True)):
        values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        ours = graphc.tensor(values.T.copy()).t() if transposed else graphc.tensor(values)
        theirs = torch.tensor(values.T.copy()).t() if transposed else torch.tensor(values)
        assert_close(compiled(ours), program(torch, theirs))
        assert_close(ours, theirs)
    assert compiled.num_traces == 3  # contiguous: one plan for both sizes; transposed: one per shape


# (name, program(L, x)): each returns views of its argument, of another result, or of a base it does not return,
# some written in place before they are returned
RESULT_VIEWS = {
    "slice_written": lambda L, x: x[1:].add_(1),
    "transpose_written": lambda L, x: x.t().mul_(2),
    "flat_view_written": lambda L, x: x.view(-1).add_(1),
    "reshape_written": lambda L, x: x.reshape(2, 6).sub_(1),
    "row_written": lambda L, x: x[1].add_(5),
    "diagonal_written": lambda L, x: x.diagonal().mul_(0),
    "slice_of_transpose_written": lambda L, x: x.t()[1:].add_(1),
    "unsqueezed_written": lambda L, x: x.unsqueeze(0).mul_(3),
    "detached_written": lambda L, x: x.detach().add_(1),
    "argument_written_then_viewed": lambda L, x: (x.add_(1), x.view(4, 3))[1],
    "slice_read_only": lambda L, x: x[:, 1:3],
    "expanded_row": lambda L, x: x[:1].expand(3, 4),
    "row_of_a_returned_result": lambda L, x: (lambda y: (y, y[0].add_(1)))(x * 2),
    "rows_of_a_base_not_returned": lambda L, x: (lambda y: (y[0].add_(1), y[1:]))(x * 2),
}


def _storage(t) -> int:
    return t.untyped_storage().data_ptr()


@pytest.mark.parametrize("mode", [*MODES, "cpu"])
@pytest.mark.parametrize("name", RESULT_VIEWS)
def test_results_viewing_arguments_and_each_other_share_memory_like_torch(name, mode):
    """A returned view of an argument (or of another result) is a view of it on every call, written in place before
    or not: writes through the result reach the argument and the other way round, and it knows its base, as
    torch's `_base` (a copy would silently stop sharing)."""
    program = RESULT_VIEWS[name]
    run = _runner(lambda x: program(graphc, x), mode)
    for call in range(3):
        x, tx = graphc.tensor(A + call), torch.tensor(A + call)
        got, want = _as_tuple(run(x)), _as_tuple(program(torch, tx))
        for g, w in zip(got, want):
            assert_close(g, w)
            assert (g._view is not None) == (w._base is not None)
            assert np.shares_memory(g._data, x._data) == (_storage(w) == _storage(tx))
        if any(0 in w.stride() for w in want):  # an expanded result: writing it is refused, so write the argument
            x.mul_(-1)
            tx.mul_(-1)
        else:
            for g, w in zip(got, want):
                g.mul_(-1)
                w.mul_(-1)
        for g, w in zip(got + (x,), want + (tx,)):
            assert_close(g, w)
    if mode != "eager":
        assert run.num_traces == 1


# (name, program(L, x)): tensors a factory makes inside the function, written in place, viewed, returned
MADE_INSIDE = {
    "accumulator_read_after_write": lambda L, x: (lambda o: (o.add_(x), o * 1)[1])(L.zeros(3, 4)),
    "accumulator_returned": lambda L, x: (lambda o: (o.add_(x), o)[1])(L.zeros(3, 4)),
    "rows_filled_and_returned": lambda L, x: (lambda o: (o[1:].copy_(x[:2]), o, o[0])[1:])(L.ones(3, 4)),
    "made_and_returned_unwritten": lambda L, x: (L.arange(4.0), x * 2),
    "made_from_a_list_scaled": lambda L, x: (lambda o: (o.mul_(x.sum()), o)[1])(L.tensor([1.0, 2.0, 3.0])),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", MADE_INSIDE)
def test_tensors_made_inside_are_new_at_each_call_like_torch(name, mode):
    """A tensor made inside the function is made anew by each call, as eagerly: a replay neither reads the value an
    earlier call left in it, nor returns the same tensor again (a caller's write to one result stays there)."""
    program = MADE_INSIDE[name]
    run = _runner(lambda x: program(graphc, x), mode)
    results = []
    for call in range(3):
        x, tx = graphc.tensor(A + call), torch.tensor(A + call)
        got, want = _as_tuple(run(x)), _as_tuple(program(torch, tx))
        for g, w in zip(got, want):
            assert_close(g, w)
            assert np.shares_memory(g._data, got[0]._data) == (_storage(w) == _storage(want[0]))
        got[0].add_(100)  # the caller writes into what it got
        want[0].add_(100)
        results.append((got, want))
    for got, want in results:
        for g, w in zip(got, want):
            assert_close(g, w)
    if mode != "eager":
        assert run.num_traces == 1


# (name, program(L, *tensors), input arrays): a write through a permuted alias, then a view that needs the base's
# row-major layout (eager's, which the value rebuilt through the permute's inverse must keep)
PERMUTED_WRITES = {
    "transposed_row_then_flat_view": (lambda L, x: (lambda y: (y.t()[0].add_(1), y.view(-1))[1])(x * 2), [A]),
    "argument_transposed_then_flat_view": (lambda L, x: (x.t()[1].mul_(0), x.view(-1) * 1)[1], [A]),
    "permuted_slice_zeroed_then_viewed": (lambda L, x: (lambda y: (y.permute(1, 0)[:, 1:].zero_(),
                                                                   y.view(2, 6).sum(0))[1])(x + 0), [A]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PERMUTED_WRITES)
def test_views_after_a_write_through_a_permuted_alias_replay(name, mode):
    program, arrays = PERMUTED_WRITES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the plan runs: no fallback to eager
        check_like_torch(program, arrays, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["clone", "argument"])
def test_a_view_empty_when_traced_sees_later_writes_at_other_sizes(where, mode):
    """`t[1:]` of one element views nothing, yet it is a view: replayed for longer inputs it shows a later write."""
    def program(L, x):
        t = x.clone() if where == "clone" else x
        v = t[1:]
        t.mul_(0)
        return v * 1

    run = _runner(lambda x: program(graphc, x), mode)
    for n in (1, 1, 4, 4):
        x, tx = graphc.arange(float(n)) + 1, torch.arange(float(n)) + 1
        assert_close(run(x), program(torch, tx))
        assert_close(x, tx)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_plan_gives_index_select_along_dim_one_torch_row_major_layout(backend):
    """numpy gathers x[:, idx] into a column-major array; eagerly the result is made row-major (torch's layout,
    which the compiler models), and a plan's step must do the same: `.clone().view(-1)` of it then aliases, and
    writes through the view reach the clone (the plan refused its view and the function ran eagerly for good)."""
    def f(L, x):
        c = x.index_select(1, L.tensor([4, 0, 4])).clone()
        v = c.view(-1)
        v[::2] = 0
        return c

    compiled = graphc.compile(lambda x: f(graphc, x), backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (3, 3, 6):
            x = np.arange(n * 5, dtype=np.float32).reshape(n, 5)
            assert_close(compiled(graphc.tensor(x)), f(torch, torch.tensor(x)))
    assert compiled.num_traces == 1
