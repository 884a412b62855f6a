"""RNN, LSTM, GRU and their cells against torch: state-dict names, outputs, final states and gradients of the input,
the initial states and every weight (copied from torch through the state dict); layouts (batch_first, unbatched),
multi-layer, bidirectional, h0/c0; errors; a compiled LSTM training step equals eager."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close, assert_trains_like_torch, clipped_step

import graphc

TOL = dict(rtol=1e-4, atol=1e-5)


def pair(make):
    g, t = make(graphc.nn), make(torch.nn)
    assert list(g.state_dict()) == list(t.state_dict())
    g.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})
    return g, t


def leaves(arrays):
    g = [graphc.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    return g, t


def flat(out):
    """The tensors of (output, h_n) or (output, (h_n, c_n)) or a cell's h or (h, c)."""
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in flat(o)]
    return [out]


def compare(g, t, g_args, t_args, g_leaves, t_leaves):
    g_out, t_out = flat(g(*g_args)), flat(t(*t_args))
    assert len(g_out) == len(t_out)
    g_loss, t_loss = 0, 0
    for go, to in zip(g_out, t_out):
        assert_close(go.detach(), to, **TOL)
        w = np.random.standard_normal(tuple(to.shape)).astype(np.float32)
        g_loss, t_loss = g_loss + (go * graphc.tensor(w)).sum(), t_loss + (to * torch.tensor(w)).sum()
    g_loss.backward()
    t_loss.backward()
    for gl, tl in zip(g_leaves, t_leaves):
        assert_close(gl.grad, tl.grad, **TOL)
    for (name, gp), (_, tp) in zip(g.named_parameters(), t.named_parameters()):
        assert gp.grad is not None, name
        assert_close(gp.grad, tp.grad, **TOL)


RECURRENT = [
    ("RNN", lambda m: m.RNN(3, 4)),
    ("RNN-relu-2layer-nobias", lambda m: m.RNN(3, 4, num_layers=2, nonlinearity="relu", bias=False)),
    ("LSTM", lambda m: m.LSTM(3, 4)),
    ("LSTM-2layer-bidirectional-batch_first", lambda m: m.LSTM(3, 4, num_layers=2, bidirectional=True,
                                                                  batch_first=True)),
    ("GRU", lambda m: m.GRU(3, 4)),
    ("GRU-2layer-bidirectional", lambda m: m.GRU(3, 5, num_layers=2, bidirectional=True)),
]


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("make", [m for _, m in RECURRENT], ids=[n for n, _ in RECURRENT])
def test_recurrent_layer_matches_torch(make, with_state):
    g, t = pair(make)
    seq, batch = 5, 2
    shape = (batch, seq, g.input_size) if g.batch_first else (seq, batch, g.input_size)
    states = 2 if g.mode == "LSTM" else 1
    h_shape = (g.num_layers * (2 if g.bidirectional else 1), batch, g.hidden_size)
    arrays = [np.random.standard_normal(shape).astype(np.float32)]
    arrays += [np.random.standard_normal(h_shape).astype(np.float32) for _ in range(states)] if with_state else []
    g_leaves, t_leaves = leaves(arrays)
    g_args, t_args = [g_leaves[0]], [t_leaves[0]]
    if with_state:
        g_args.append(tuple(g_leaves[1:]) if states == 2 else g_leaves[1])
        t_args.append(tuple(t_leaves[1:]) if states == 2 else t_leaves[1])
    compare(g, t, g_args, t_args, g_leaves, t_leaves)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_matches_torch(kind):
    g, t = pair(lambda m: getattr(m, kind)(3, 4, num_layers=2))
    arrays = [np.random.standard_normal((6, 3)).astype(np.float32)]
    arrays += [np.random.standard_normal((2, 4)).astype(np.float32) for _ in range(2 if kind == "LSTM" else 1)]
    g_leaves, t_leaves = leaves(arrays)
    state = (lambda ls: tuple(ls[1:])) if kind == "LSTM" else (lambda ls: ls[1])
    compare(g, t, [g_leaves[0], state(g_leaves)], [t_leaves[0], state(t_leaves)], g_leaves, t_leaves)


CELLS = [
    ("RNNCell", lambda m: m.RNNCell(3, 4)),
    ("RNNCell-relu-nobias", lambda m: m.RNNCell(3, 4, bias=False, nonlinearity="relu")),
    ("LSTMCell", lambda m: m.LSTMCell(3, 4)),
    ("GRUCell", lambda m: m.GRUCell(3, 4)),
]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("make", [m for _, m in CELLS], ids=[n for n, _ in CELLS])
def test_cell_matches_torch(make, batched):
    g, t = pair(make)
    lead = (2,) if batched else ()
    states = 2 if g.mode == "LSTM" else 1
    arrays = [np.random.standard_normal(lead + (3,)).astype(np.float32)]
    arrays += [np.random.standard_normal(lead + (4,)).astype(np.float32) for _ in range(states)]
    g_leaves, t_leaves = leaves(arrays)
    state = (lambda ls: tuple(ls[1:])) if states == 2 else (lambda ls: ls[1])
    compare(g, t, [g_leaves[0], state(g_leaves)], [t_leaves[0], state(t_leaves)], g_leaves, t_leaves)
    g_default, t_default = g(graphc.tensor(arrays[0])), t(torch.tensor(arrays[0]))  # no state: zeros
    for go, to in zip(flat(g_default), flat(t_default)):
        assert_close(go.detach(), to, **TOL)


def test_initialisation_follows_torch():
    lstm = graphc.nn.LSTM(3, 16, num_layers=2)
    bound = 1 / 4
    for name, p in lstm.named_parameters():
        values = p.detach().numpy()
        assert values.min() >= -bound and values.max() <= bound, name
        assert values.std() > bound / 2, name  # uniform over the range, not zeros
    assert tuple(lstm.weight_ih_l0.shape) == (64, 3) and tuple(lstm.weight_hh_l1.shape) == (64, 16)


def test_dropout_between_layers_only_in_training():
    g = graphc.nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = graphc.randn(5, 2, 3)
    g.eval()
    first, second = g(x)[0], g(x)[0]
    np.testing.assert_array_equal(first.detach().numpy(), second.detach().numpy())
    g.train()
    assert not np.allclose(g(x)[0].detach().numpy(), first.detach().numpy())


def test_single_layer_dropout_warns_and_flatten_parameters_is_accepted():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        torch.nn.LSTM(3, 4, dropout=0.2)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        lstm = graphc.nn.LSTM(3, 4, dropout=0.2)
    lstm.flatten_parameters()


def test_errors_like_torch():
    cases = [
        (lambda m, lib: m.LSTM(3, 4)(lib.zeros(5, 2, 7)), RuntimeError, "input_size"),
        (lambda m, lib: m.GRU(3, 4)(lib.zeros(5, 2, 3), lib.zeros(2, 2, 4)), RuntimeError, "Expected hidden size"),
        (lambda m, lib: m.LSTM(3, 4)(lib.zeros(5, 2, 3), (lib.zeros(1, 3, 4), lib.zeros(1, 3, 4))), RuntimeError,
         "Expected hidden size"),
        (lambda m, lib: m.RNN(3, 4)(lib.zeros(5, 2, 3, 1)), ValueError, "2D or 3D"),
        (lambda m, lib: m.RNN(3, 4, nonlinearity="gelu"), ValueError, "nonlinearity"),
        (lambda m, lib: m.LSTM(3, 4, dropout=1.5), ValueError, "dropout"),
        (lambda m, lib: m.GRUCell(3, 4)(lib.zeros(2, 5)), RuntimeError, "input_size"),
    ]
    for make, error, words in cases:
        with pytest.raises(error):
            make(torch.nn, torch)
        with pytest.raises(error, match=words):
            make(graphc.nn, graphc)


def test_compiled_lstm_training_step_equals_eager():
    """An LSTM language-model step (embedding, LSTM, linear head, cross-entropy, Adam) compiled on the numpy backend
    gives the eager losses and weights."""
    def build():
        graphc.manual_seed(0)
        model = graphc.nn.ModuleDict({"emb": graphc.nn.Embedding(11, 6), "rnn": graphc.nn.LSTM(6, 8, batch_first=True),
                                      "head": graphc.nn.Linear(8, 11)})
        return model, graphc.optim.Adam(model.parameters(), lr=0.01)

    def step(model, opt, x, y):
        opt.zero_grad()
        out, _ = model["rnn"](model["emb"](x))
        loss = graphc.nn.functional.cross_entropy(model["head"](out).reshape(-1, 11), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    batches = [(graphc.tensor(rng.integers(0, 11, (2, 5))), graphc.tensor(rng.integers(0, 11, (2, 5))))
               for _ in range(3)]
    eager_model, eager_opt = build()
    model, opt = build()
    compiled = graphc.compile(lambda x, y: step(model, opt, x, y), backend="numpy")
    for x, y in batches:
        expected = step(eager_model, eager_opt, x, y)
        np.testing.assert_allclose(compiled(x, y).item(), expected.item(), rtol=1e-5)
    assert compiled.num_compiles == 1
    for (name, p), (_, q) in zip(model.named_parameters(), eager_model.named_parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_compiled_layer_follows_sequence_length_and_batch(kind):
    """A compiled recurrent layer runs one step per time step, so its trace is specialised to the sequence length
    (and the zero initial state to the batch): another length or batch traces again instead of replaying the old
    loop. Outputs and gradients equal torch at each shape; a repeated shape replays."""
    g, t = pair(lambda m: getattr(m, kind)(3, 4, batch_first=True))
    compiled = graphc.compile(lambda x: g(x)[0], backend="numpy")
    for shape in ((2, 5, 3), (2, 7, 3), (1, 7, 3), (2, 5, 3)):
        (gx,), (tx,) = leaves([np.random.standard_normal(shape).astype(np.float32)])
        out, expected = compiled(gx), t(tx)[0]
        assert_close(out.detach(), expected, **TOL)
        w = np.random.standard_normal(shape[:2] + (4,)).astype(np.float32)
        (out * graphc.tensor(w)).sum().backward()
        (expected * torch.tensor(w)).sum().backward()
        assert_close(gx.grad, tx.grad, **TOL)
    assert compiled.num_traces == 3


def test_lstm_language_model_trains_like_torch():
    """A word-language-model-style script (embedding, 2-layer LSTM carrying its hidden state across batches, tied
    decoder, CrossEntropyLoss, clip_grad_norm_, SGD with StepLR) run under torch and graphc from the same weights:
    the losses agree step by step."""
    def script(lib):
        nn = lib.nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Embedding(13, 6)
                self.rnn = nn.LSTM(6, 6, num_layers=2, dropout=0.0)
                self.decoder = nn.Linear(6, 13)
                self.decoder.weight = self.encoder.weight

            def forward(self, x, hidden):
                out, hidden = self.rnn(self.encoder(x), hidden)
                return self.decoder(out).view(-1, 13), hidden

        return Model()

    data = np.random.default_rng(0).integers(0, 13, (9, 3))

    def train(lib, model):
        opt = lib.optim.SGD(model.parameters(), lr=0.5)
        sched = lib.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        criterion = lib.nn.CrossEntropyLoss()
        hidden, losses = None, []
        for i in range(0, 8, 2):
            x, y = lib.tensor(data[i:i + 2]), lib.tensor(data[i + 1:i + 3])
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            output, hidden = model(x, hidden)
            losses.append(clipped_step(lib, model, criterion(output, y.reshape(-1)), opt, sched, 0.25))
        return losses

    assert_trains_like_torch(script, train)


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("make", [lambda m: m.LSTM(2, 3, num_layers=2, bidirectional=True),
                                  lambda m: m.GRU(2, 3, batch_first=True)], ids=["LSTM-bidirectional", "GRU"])
def test_packed_sequences_match_torch(make, enforce_sorted):
    """pack_padded_sequence -> RNN -> pad_packed_sequence, the seq2seq-tutorial pattern: packed data, batch sizes,
    indices, outputs, final states and input gradients as torch's."""
    g, t = pair(make)
    lengths = [5, 3, 2] if enforce_sorted else [3, 5, 2]
    x = np.random.standard_normal((5, 3, 2)).astype(np.float32)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_rnn, t_rnn = graphc.nn.utils.rnn, torch.nn.utils.rnn
    g_packed = g_rnn.pack_padded_sequence(gx, lengths, enforce_sorted=enforce_sorted)
    t_packed = t_rnn.pack_padded_sequence(tx, lengths, enforce_sorted=enforce_sorted)
    assert g_packed.batch_sizes.tolist() == t_packed.batch_sizes.tolist()
    if not enforce_sorted:
        assert g_packed.sorted_indices.tolist() == t_packed.sorted_indices.tolist()
    (g_out, g_state), (t_out, t_state) = g(g_packed), t(t_packed)
    assert_close(g_out.data.detach(), t_out.data, **TOL)
    (g_pad, g_len), (t_pad, t_len) = g_rnn.pad_packed_sequence(g_out, total_length=6), \
        t_rnn.pad_packed_sequence(t_out, total_length=6)
    assert g_len.tolist() == t_len.tolist()
    loss_g, loss_t = g_pad.sum(), t_pad.sum()
    for a, b in zip(flat(g_state), flat(t_state)):
        assert_close(a.detach(), b, **TOL)
        loss_g, loss_t = loss_g + (a * a).sum(), loss_t + (b * b).sum()
    loss_g.backward()
    loss_t.backward()
    assert_close(gx.grad, tx.grad, **TOL)
    assert [s.shape[0] for s in g_rnn.pad_packed_sequence(g_rnn.pack_sequence(
        [graphc.zeros(2, 2), graphc.zeros(4, 2)], enforce_sorted=False))[0].unbind(1)] == [4, 4]
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        g_rnn.pack_padded_sequence(gx, [3, 5, 2])
    with pytest.raises(RuntimeError):
        t_rnn.pack_padded_sequence(tx, [3, 5, 2])


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_compiled_packed_lstm_replays_for_each_set_of_lengths(enforce_sorted):
    """pack_padded_sequence's layout follows from the lengths (Python ints, guarded by value, or a small tensor,
    whose values are guarded): the batch sizes and sort orders it builds may be read back by the LSTM and
    pad_packed_sequence without making the trace unreplayable (it ran eagerly after three calls, with advice
    that could not be followed). Losses and lengths are torch's; each set of lengths is traced once."""
    from torch.nn.utils.rnn import pack_padded_sequence as tpack
    from torch.nn.utils.rnn import pad_packed_sequence as tpad

    from graphc.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    tl = torch.nn.LSTM(4, 3, batch_first=True)
    gl = graphc.nn.LSTM(4, 3, batch_first=True)
    gl.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tl.state_dict().items()})

    def step(lstm, pack, pad):
        def f(x, lengths):
            out, _ = lstm(pack(x, lengths, batch_first=True, enforce_sorted=enforce_sorted))
            out, lens = pad(out, batch_first=True, total_length=x.size(1))
            return out.sum(), lens
        return f

    compiled, reference = graphc.compile(step(gl, pack_padded_sequence, pad_packed_sequence)), step(tl, tpack, tpad)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(6):
            lengths = [[6, 5, 3, 2], [6, 4, 4, 1]][i % 2]
            lengths = lengths if enforce_sorted else lengths[::-1]
            x = rng.standard_normal((4, 6, 4)).astype(np.float32)
            loss, lens = reference(torch.tensor(x), lengths)
            for given in (lengths, graphc.tensor(lengths)):
                mine, my_lens = compiled(graphc.tensor(x), given)
                assert_close(mine, loss)
                assert my_lens.tolist() == lens.tolist()
    assert compiled.num_traces == 4
