"""Recurrent layers: RNN, LSTM, GRU and their cells, with torch's parameter names (weight_ih_l0, bias_hh_l1_reverse,
...), gate order (LSTM i, f, g, o; GRU r, z, n), initialisation U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) and
input/hidden layouts. A layer computes the input projections of the whole sequence in one matmul, then steps through
time with graphc ops (a Python loop over the sequence, so it is differentiable and captured like any other code)."""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from ..errors import op_error
from ..ops.creation import tensor
from ..ops.elementwise import relu, sigmoid, tanh, where
from ..ops.join import cat, stack
from ..ops.meta import specialized_size
from ..ops.view import squeeze, unsqueeze
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import new_parameter
from .module import Module
from .utils.rnn import PackedSequence, pack_sorted, pad_packed_sequence

State = Tensor | tuple[Tensor, Tensor]


def _rnn_tanh_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return tanh(gi + F.linear(h, w_hh, b_hh))


def _rnn_relu_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return relu(gi + F.linear(h, w_hh, b_hh))


def _lstm_step(gi: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """One LSTM step from the input projection gi = x W_ih^T + b_ih: gates i, f, g, o; c' = f c + i g;
    h' = o tanh(c') (torch.nn.LSTM's equations)."""
    h, c = state
    i, f, g, o = (gi + F.linear(h, w_hh, b_hh)).chunk(4, -1)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c), c


def _gru_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step: r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h, where h_n
    includes b_hn (torch.nn.GRU's equations)."""
    x_r, x_z, x_n = gi.chunk(3, -1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return n + z * (h - n)


_MODES: dict[str, tuple[int, Callable]] = {"RNN_TANH": (1, _rnn_tanh_step), "RNN_RELU": (1, _rnn_relu_step),
                                           "LSTM": (4, _lstm_step), "GRU": (3, _gru_step)}


def _hidden_of(state: State) -> Tensor:
    return state[0] if isinstance(state, tuple) else state


class RNNBase(Module):
    """Multi-layer (optionally bidirectional) recurrent layer over (L, N, H_in) input ((N, L, H_in) if batch_first,
    or unbatched (L, H_in)); dropout between layers in training mode."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                             "being zeroed")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if proj_size:
            raise NotImplementedError(f"{type(self).__name__}: proj_size is not supported")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          UserWarning, stacklevel=3)
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gates = _MODES[mode][0] * hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = [("weight_ih", (gates, layer_input)), ("weight_hh", (gates, hidden_size))]
                shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))] if bias else []
                for name, shape in shapes:
                    setattr(self, f"{name}_l{layer}{suffix}", new_parameter(*shape, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """torch packs the weights into one cuDNN buffer here; graphc's weights need no packing, so it does nothing
        (scripts call it before each forward)."""

    def _layer_params(self, layer: int, suffix: str) -> tuple[Tensor, ...]:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{n}_l{layer}{suffix}") if self.bias or n.startswith("weight") else None
                     for n in names)

    def _check_input(self, input: Tensor) -> bool:
        """Checks torch makes on the input; returns whether it is batched."""
        if input.ndim not in (2, 3):
            raise op_error(type(self).__name__, f"Expected input to be 2D or 3D, got {input.ndim}D tensor instead",
                           (input,), ValueError)
        if input.shape[-1] != self.input_size:
            raise op_error(type(self).__name__, f"input.size(-1) must be equal to input_size. Expected "
                           f"{self.input_size}, got {input.shape[-1]}", (input,), RuntimeError)
        return input.ndim == 3

    def _check_hidden(self, hx: Tensor, batch: int) -> None:
        """hx (or an unbatched one after unsqueeze) must be (num_layers * directions, batch, hidden_size)."""
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        if tuple(hx.shape) != expected:
            raise op_error(type(self).__name__, f"Expected hidden size {expected}, got {list(hx.shape)}", (hx,),
                           RuntimeError)

    def forward(self, input: Tensor | PackedSequence, hx: State | None = None) -> tuple[Tensor | PackedSequence, State]:
        packed = input if isinstance(input, PackedSequence) else None
        valid = None
        if packed is not None:  # run the padded batch in its original order; finished sequences keep their state
            input, lengths = pad_packed_sequence(packed)
            steps = np.arange(input.shape[0])[:, None, None]
            valid = tensor(steps < lengths._host()[None, :, None])
        batched = self._check_input(input)
        is_lstm = self.mode == "LSTM"
        if not batched:
            input = unsqueeze(input, 1)
            hx = None if hx is None else tuple(unsqueeze(h, 1) for h in hx) if is_lstm else unsqueeze(hx, 1)
        elif self.batch_first and packed is None:
            input = input.transpose(0, 1)
        directions = 2 if self.bidirectional else 1
        if hx is None:
            zeros = input.new_zeros(self.num_layers * directions, specialized_size(input, 1), self.hidden_size)
            hx = (zeros, zeros) if is_lstm else zeros
        else:
            for h in hx if is_lstm else (hx,):
                self._check_hidden(h, input.shape[1])
        step = _MODES[self.mode][1]
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                input = F.dropout(input, self.dropout, self.training)
            outputs = []
            for direction, suffix in enumerate(("", "_reverse")[:directions]):
                k = layer * directions + direction
                state = (hx[0][k], hx[1][k]) if is_lstm else hx[k]
                out, state = self._run(input, state, step, self._layer_params(layer, suffix), direction == 1, valid)
                outputs.append(out)
                finals.append(state)
            input = outputs[0] if directions == 1 else cat(outputs, -1)
        output = input
        h_n = stack([_hidden_of(s) for s in finals])
        state = (h_n, stack([s[1] for s in finals])) if is_lstm else h_n
        if packed is not None:
            order = packed.sorted_indices
            return pack_sorted(output if order is None else output[:, order], packed.batch_sizes, order,
                               packed.unsorted_indices), state
        if not batched:
            return squeeze(output, 1), tuple(squeeze(s, 1) for s in state) if is_lstm else squeeze(state, 1)
        return (output.transpose(0, 1) if self.batch_first else output), state

    @staticmethod
    def _run(input: Tensor, state: State, step: Callable, params: tuple, reverse: bool,
             valid: Tensor | None) -> tuple[Tensor, State]:
        """One direction of one layer over the (L, N, H) sequence: returns the (L, N, hidden) outputs, final state.
        valid (L, N, 1), for packed input, marks the steps inside each sequence: elsewhere the state is kept, so
        the reverse direction starts at each sequence's own last step."""
        w_ih, w_hh, b_ih, b_hh = params
        projected = F.linear(input, w_ih, b_ih)
        length = specialized_size(input, 0)  # one step per time step: a compiled loop is specialised to it
        times = range(length - 1, -1, -1) if reverse else range(length)
        outputs = [None] * length
        for t in times:
            new = step(projected[t], state, w_hh, b_hh)
            if valid is not None:
                new = tuple(where(valid[t], a, b) for a, b in zip(new, state)) if isinstance(new, tuple) else \
                    where(valid[t], new, state)
            state = new
            outputs[t] = _hidden_of(state)
        return stack(outputs), state

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (nonlinearity='relu' uses relu). Returns
    (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; forward(input, (h_0, c_0)) returns (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit; forward(input, h_0) returns (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class RNNCellBase(Module):
    """One recurrent step on (N, H_in) input (or unbatched (H_in,)); parameters weight_ih, weight_hh, bias_ih,
    bias_hh with torch's initialisation."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gates = _MODES[mode][0] * hidden_size
        self.weight_ih = new_parameter(gates, input_size, device=device, dtype=dtype)
        self.weight_hh = new_parameter(gates, hidden_size, device=device, dtype=dtype)
        self.register_parameter("bias_ih", new_parameter(gates, device=device, dtype=dtype) if bias else None)
        self.register_parameter("bias_hh", new_parameter(gates, device=device, dtype=dtype) if bias else None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def forward(self, input: Tensor, hx: State | None = None) -> State:
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise op_error(name, f"Expected input to be 1D or 2D, got {input.ndim}D instead", (input,), ValueError)
        if input.shape[-1] != self.input_size:
            raise op_error(name, f"input has inconsistent input_size: got {input.shape[-1]} expected "
                           f"{self.input_size}", (input,), RuntimeError)
        batched = input.ndim == 2
        x = input if batched else unsqueeze(input, 0)
        is_lstm = self.mode == "LSTM"
        if hx is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros) if is_lstm else zeros
        else:
            state = tuple(hx) if is_lstm else hx
            for h in state if is_lstm else (state,):
                if tuple(h.shape) != tuple(x.shape[:1] if batched else ()) + (self.hidden_size,):
                    raise op_error(name, f"hidden state of shape {list(h.shape)} does not match input of shape "
                                   f"{list(input.shape)} and hidden_size {self.hidden_size}", (input, h), RuntimeError)
            if not batched:
                state = tuple(unsqueeze(h, 0) for h in state) if is_lstm else unsqueeze(state, 0)
        state = _MODES[self.mode][1](F.linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh, self.bias_hh)
        if batched:
            return state
        return tuple(squeeze(h, 0) for h in state) if is_lstm else squeeze(state, 0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: forward(input, (h, c)) returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: forward(input, h) returns h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
