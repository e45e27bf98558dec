"""Optimizers (how a gradient becomes an update) and learning-rate schedules.

``optimizers.py`` holds SGD, Adam, AdamW, RMSprop and Adagrad, each with its
update rule written out; ``schedules.py`` changes an optimizer's ``lr`` once per
epoch. Both are re-exported here, so ``flexnet.optim.Adam`` and
``flexnet.optim.StepLR`` work.
"""

from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
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

#: Names the command line and fit(optimizer="adam") use -> classes.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
}


def make_optimizer(name: str, **kwargs) -> Optimizer:
    """Build an optimizer from its name (``"sgd"``, ``"adam"``, ...) and arguments.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown name {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)
