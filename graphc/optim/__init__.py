"""graphc.optim: optimizers with torch's names, hyper-parameters and state-dict layout."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
