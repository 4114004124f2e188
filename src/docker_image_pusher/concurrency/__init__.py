"""How many blob transfers run at once, decided from measured throughput (no Prefect in here).

``ConcurrencyController`` hands out permits and sizes their number with a manager: ``FixedManager`` (one
level), ``DynamicManager`` (slow start, hill climbing, AIMD back-off) or the adaptive manager (a bandit that
learns across runs), each tuned by a strategy (``strategy_params``). Transfers publish progress events; the
controller's ``observe`` turns them into measuring windows (``Window``) that a ``PerformanceMonitor`` judges.
"""

from ._config import PRESETS, ConcurrencyConfig, apply_preset, make_manager
from ._controller import ConcurrencyController, ControllerStats
from ._dynamic import DynamicManager
from ._fixed import FixedManager
from ._monitor import PerformanceMonitor
from ._strategy import StrategyParams, strategy_params
from ._types import Adjustment, Decision, Manager, Window

__all__ = [
    "PRESETS",
    "Adjustment",
    "ConcurrencyConfig",
    "ConcurrencyController",
    "ControllerStats",
    "Decision",
    "DynamicManager",
    "FixedManager",
    "Manager",
    "PerformanceMonitor",
    "StrategyParams",
    "Window",
    "apply_preset",
    "make_manager",
    "strategy_params",
]
