"""graphc in a minute: eager tensors with autograd (checked against torch), the same code under @graphc.compile,
and what the compiler made of it: the IR, the fused groups and one generated Triton kernel, run under Triton's
interpreter on this CPU."""
import torch

import graphc
import graphc.nn.functional as F

graphc.manual_seed(0)
x = graphc.randn(8, 16)
w = graphc.randn(32, 16, requires_grad=True)
b = graphc.zeros(32, requires_grad=True)


def block(x, w, b):
    """linear + bias + GELU, then layer norm: a matmul with its epilogue and a fused row reduction."""
    h = F.gelu(x @ w.T + b)
    return F.layer_norm(h, (h.shape[-1],))


print("1. eager, op by op (print and pdb work here)")
loss = block(x, w, b).pow(2).mean()
loss.backward()
tx, tw, tb = (torch.tensor(t.detach().numpy(), requires_grad=t.requires_grad) for t in (x, w, b))
tloss = torch.nn.functional.layer_norm(torch.nn.functional.gelu(tx @ tw.T + tb), (32,)).pow(2).mean()
tloss.backward()
print(f"   loss {loss.item():.6f}, torch {tloss.item():.6f}; dL/dw matches torch:",
      torch.allclose(torch.from_numpy(w.grad.numpy()), tw.grad, atol=1e-5))

print("2. @graphc.compile: captured once, replayed as a plan (backend 'interpret' runs the Triton kernels on CPU)")
w, b = w.detach(), b.detach()  # inference; compile a whole training step (backward included) to capture backward
compiled = graphc.compile(block, backend="interpret")
out = compiled(x, w, b)
for rows in (3, 5):
    compiled(graphc.randn(rows, 16), w, b)
same = torch.allclose(torch.from_numpy(out.numpy()), torch.from_numpy(block(x, w, b).numpy()), atol=1e-5)
print(f"   equals eager: {same}; num_compiles over batch sizes 8, 3, 5: {compiled.num_compiles}")

print("3. graphc.explain: the graph, the fused kernels, modelled memory traffic")
report = graphc.explain(block, x, w, b)
print(report)
print(report.kernels[0].source)
print(f"   PTX for sm_90 (compiled ahead of time, no GPU needed): {len(report.kernels[0].ptx(90)):,} characters")
