"""Fitting sin(x) with a third-order Legendre polynomial through a custom autograd.Function, in the manner of the
"Learning PyTorch with Examples" tutorial: tensors with requires_grad, manual updates under no_grad."""
import math

import torch


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


class Fit(torch.nn.Module):
    """The four coefficients as a module, so the test can copy them through the state dict."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.full((), 0.0))
        self.b = torch.nn.Parameter(torch.full((), -1.0))
        self.c = torch.nn.Parameter(torch.full((), 0.0))
        self.d = torch.nn.Parameter(torch.full((), 0.3))

    def forward(self, x):
        P3 = LegendrePolynomial3.apply
        return self.a + self.b * P3(self.c + self.d * x)


def make_model():
    return Fit()


def run(model, compile=False, steps=400):
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 200, device=device, dtype=dtype)
    y = torch.sin(x)
    learning_rate = 5e-6
    forward = torch.compile(model) if compile else model
    losses = []
    for t in range(steps):
        y_pred = forward(x)
        loss = (y_pred - y).pow(2).sum()
        if t % 100 == 99:
            print(t, loss.item())
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= learning_rate * p.grad
                p.grad = None
    print(f"Result: y = {model.a.item()} + {model.b.item()} * P3({model.c.item()} + {model.d.item()} x)")
    return losses


if __name__ == "__main__":
    run(make_model())
