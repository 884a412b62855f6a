"""torch.utils.checkpoint: activation checkpointing, trading compute for memory (Chen et al., "Training Deep Nets
with Sublinear Memory Cost", 2016): a checkpointed function keeps only its inputs, and the backward runs it again
to get the activations its gradients need."""
from __future__ import annotations

from collections.abc import Callable

from ..autograd import Function, backward, enable_grad
from ..ops.creation import get_rng_state, set_rng_state, zeros
from ..state import STATE
from ..tensor import Tensor


class _Checkpoint(Function):
    """forward(ctx, function, preserve_rng_state, anchor, *args): function(*args) without recording; backward runs it
    again with recording (under the random state forward saw) and backpropagates the incoming gradients through it,
    accumulating into the parameters it reads, as torch's reentrant checkpoint does. `anchor`, a tensor requiring
    grad, gives the result a backward even where no argument requires grad (parameters read inside still do)."""

    @staticmethod
    def forward(ctx, function, preserve_rng_state, anchor, *args):
        ctx.function, ctx.args = function, args
        ctx.rng = get_rng_state() if preserve_rng_state else None
        return function(*args)

    @staticmethod
    def backward(ctx, *grads):
        if ctx.rng is not None:
            outer = get_rng_state()
            set_rng_state(ctx.rng)
        inputs = [a.detach().requires_grad_(a.requires_grad) if type(a) is Tensor else a for a in ctx.args]
        try:
            with enable_grad():
                outputs = ctx.function(*inputs)
        finally:
            if ctx.rng is not None:
                set_rng_state(outer)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(o, g) for o, g in zip(outputs, grads)
                 if type(o) is Tensor and o.requires_grad and g is not None]
        if pairs:
            backward([o for o, _ in pairs], [g for _, g in pairs])
        return (None, None, None, *(x.grad if type(x) is Tensor and x.requires_grad else None for x in inputs))


def checkpoint(function: Callable, *args, use_reentrant: bool | None = None, preserve_rng_state: bool = True,
               **kwargs):
    """torch.utils.checkpoint.checkpoint: function(*args, **kwargs) (a tensor or a tuple of values), keeping only
    its arguments for the backward, which runs the function again. Parameters the function reads get gradients
    whether or not an argument requires grad (torch's use_reentrant=False behaviour; use_reentrant is accepted and
    changes nothing); random ops draw the same values again (preserve_rng_state). Inside graphc.compile the
    function is traced like any code (the compiled plan decides what it keeps), and so it is without grad mode."""
    if kwargs:
        return checkpoint(lambda *a: function(*a, **kwargs), *args, preserve_rng_state=preserve_rng_state)
    if STATE.capture is not None or not STATE.grad_enabled:
        return function(*args)
    return _Checkpoint.apply(function, preserve_rng_state, zeros((), requires_grad=True), *args)


def checkpoint_sequential(functions, segments: int, input: Tensor, use_reentrant: bool | None = None,  # noqa: A002
                          preserve_rng_state: bool = True):
    """torch.utils.checkpoint.checkpoint_sequential: a Sequential (or list of modules) run in `segments` pieces,
    each but the last checkpointed."""
    functions = list(functions.children()) if hasattr(functions, "children") else list(functions)
    size = -(-len(functions) // segments)
    pieces = [functions[i:i + size] for i in range(0, len(functions), size)]

    def run(piece):
        def forward(x):
            for f in piece:
                x = f(x)
            return x
        return forward
    for piece in pieces[:-1]:
        input = checkpoint(run(piece), input, preserve_rng_state=preserve_rng_state)
    return run(pieces[-1])(input)
