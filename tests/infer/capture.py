"""A stand-in optimizer for tests that compare one training step's gradients."""


class Capture:
    """Stands in for the optimizer: keeps the gradients instead of stepping."""

    def __init__(self, params):
        self.params, self.grads = params, None

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.grads = [p.grad.clone() for p in self.params]
