"""Training: the fit loop, callbacks and history, checkpoints, and the trainable networks.

``loop.py`` runs one batch after another (gather, forward, loss, backward,
optimizer step, callbacks, checkpoint); ``callbacks.py`` holds History,
EarlyStopping and the callback hooks; ``loggers.py`` the TensorBoard and CSV
loggers; ``checkpoint.py`` writes and restores a
run's whole state for exact resume; ``trace.py`` follows one batch through
every layer (``net.trace``); ``network.py`` gives the networks of
:mod:`flexnet.nn` their ``fit``, ``save`` and ``trace`` methods.
"""

from .callbacks import Callback, EarlyStopping, History, LRSchedulerCallback
from .checkpoint import TrainingInterrupted
from .evaluation import evaluate
from .loggers import CSVLogger, TensorBoard
from .loop import FitLoop, TrainingDiverged, fit
from .network import Network, Sequential
from .trace import Trace

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "FitLoop", "History", "LRSchedulerCallback", "Network",
    "Sequential", "TensorBoard", "Trace", "TrainingDiverged", "TrainingInterrupted", "evaluate", "fit",
]
