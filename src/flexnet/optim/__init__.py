"""Optimizers (how a gradient becomes an update) and learning-rate schedules.

``optimizers.py`` holds SGD, Adam, AdamW, RMSprop and Adagrad, each with its
update rule written out; ``schedules.py`` changes an optimizer's ``lr`` once per
epoch. Both are re-exported here, so ``flexnet.optim.Adam`` and
``flexnet.optim.StepLR`` work.
"""

from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, make_optimizer
from .schedules import (
    CosineWarmup,
    ExponentialLR,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
    make_scheduler,
)

__all__ = [
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Optimizer", "make_optimizer",
    "LRScheduler", "StepLR", "ExponentialLR", "CosineWarmup", "ReduceLROnPlateau",
    "make_scheduler",
]
