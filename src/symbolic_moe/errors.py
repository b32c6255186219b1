"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class SmoeError(Exception):
    """Base class: a problem with input, configuration or environment that the user can fix."""


class ConfigError(SmoeError):
    pass


class DataError(SmoeError):
    pass


class EngineError(SmoeError):
    pass


class MissingExtraError(SmoeError):
    """An optional dependency (extra) is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{package}': "
            f"pip install 'symbolic-moe[{extra}]' (or pip install {package})"
        )


class StructuredOutputWarning(UserWarning):
    """A structured answer was unusable or an engine refused a schema: the run goes on (the
    question falls back to no skills, or the engine to free text), and this says so once."""
