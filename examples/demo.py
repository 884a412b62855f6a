"""graphc in a minute: eager tensors with autograd, checked against the same computation in torch."""
import torch

import graphc

graphc.manual_seed(0)
x = graphc.randn(4, 3, requires_grad=True)
w = graphc.randn(3, 2, requires_grad=True)
loss = ((x @ w).relu() ** 2).mean()
loss.backward()
print("loss", loss.item())
print("dL/dw", w.grad)

tx, tw = (torch.tensor(t.numpy(force=True), requires_grad=True) for t in (x, w))
tloss = ((tx @ tw).relu() ** 2).mean()
tloss.backward()
print("torch agrees:", torch.allclose(torch.from_numpy(w.grad.numpy()), tw.grad, atol=1e-6))
