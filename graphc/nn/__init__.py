"""graphc.nn: modules, layers, losses and their functional forms, with torch's names and semantics."""
from . import functional, init, parallel, utils
from .activation import GELU, Dropout, ReLU, Sigmoid, Tanh
from .container import ModuleList, Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .sparse import Embedding

__all__ = ["functional", "init", "parallel", "utils", "Module", "Parameter", "Sequential", "ModuleList", "Linear",
           "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "GELU", "Tanh", "Sigmoid", "Dropout", "BatchNorm1d",
           "BatchNorm2d", "LayerNorm", "Embedding", "MSELoss", "CrossEntropyLoss"]
