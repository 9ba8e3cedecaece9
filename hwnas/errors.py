"""Errors a user can cause. The CLI prints their message as one line and exits non-zero.

Anything else that escapes is a bug in hwnas and keeps its traceback.
"""


class HwnasError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class ArchError(HwnasError, ValueError):
    """An architecture outside its search space; the message names the field and allowed values."""


class SpaceError(HwnasError, KeyError):
    """An unknown search space name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DeviceError(HwnasError):
    """An unknown device, a bad device config, or hardware that is not present."""


class TableError(HwnasError):
    """A missing, corrupt, truncated or untrusted latency table or records file."""


class UnsafePickleError(TableError):
    """A pickle that asks for a class outside the allow-list (it may try to run code)."""


class MissingKeysError(HwnasError, KeyError):
    """A latency table lacks some op keys. Never answered with 0 ms."""

    def __init__(self, missing: list[str], table: str = "table", what: str = "latency") -> None:
        self.missing = sorted(set(missing))
        shown = ", ".join(self.missing[:5])
        more = f" (+{len(self.missing) - 5} more)" if len(self.missing) > 5 else ""
        super().__init__(
            f"{table} has no {what} for {len(self.missing)} op key(s): {shown}{more}; "
            f"profile them (hwnas profile) or use a predictor that fills gaps"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def with_hint(self, hint: str) -> "MissingKeysError":
        """The same error with the generic advice replaced by ``hint``."""
        head = str(self).rsplit("; profile them", 1)[0]
        self.args = (f"{head}; {hint}",)
        return self


class InfeasibleTargetError(HwnasError):
    """A latency target no architecture in the space can meet."""


class ProfileError(HwnasError):
    """A measurement that could not be made (runtime missing, device gone)."""


class PredictorError(HwnasError):
    """A predictor that cannot be fitted or used as asked."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, re-raised by code that saved what it had finished; ``saved`` says what that is.

    A plain KeyboardInterrupt means nothing in progress was saved, so the CLI does not claim it."""

    def __init__(self, saved: str) -> None:
        super().__init__(saved)
        self.saved = saved


class LockTimeout(HwnasError):
    """Another hwnas process holds a lock (a device's files, or its CPU/GPU/phone) too long."""


class ModelError(HwnasError):
    """A model file (ONNX, TFLite) or zoo name that cannot be measured or predicted as given:
    malformed, truncated, an op the runtime cannot run, inputs that are not one fixed-shape
    image tensor, too large for the device, an unknown zoo name."""
