"""sleepkit: a reproducibility kit for vLLM's Sleep Mode study."""

__version__ = "0.1.0"
