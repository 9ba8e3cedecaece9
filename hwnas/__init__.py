"""hwnas: hardware-aware neural architecture search driven by measured latency.

Importing the package is cheap on purpose: torch, onnxruntime and the regressors are imported
lazily by the modules that need them, so ``hwnas --help`` stays fast.
"""

__version__ = "0.1.0"
