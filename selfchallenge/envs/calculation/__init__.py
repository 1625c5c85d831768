"""M3ToolEval calculation domains (DNA sequencer, message decoder, trade calculator, travel planning)."""

from .env import CalculationEnv
from .tools import DOMAINS

ENV_CLASS = CalculationEnv

__all__ = ["CalculationEnv", "DOMAINS", "ENV_CLASS"]
