"""Where Proximal Adagrad's, Adagrad-DA's and AdagradDecay's optimizers were: now :mod:`adagrad.optimizer`."""

from .optimizer import AdagradDA, AdagradDecay, ProximalAdagrad

__all__ = ["AdagradDA", "AdagradDecay", "ProximalAdagrad"]
