"""User-facing errors: the CLI prints their message (no traceback) and exits with code 2."""

from __future__ import annotations


class ErtrlError(Exception):
    """An error caused by the user's input (suite, plugin name, dataset...), with its fix."""


class ConfigError(ErtrlError):
    """One or more validation errors in a suite, each with its YAML path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} error(s)"] + [f"  {source}: {p}" for p in problems]
        super().__init__("\n".join(lines))


class DatasetError(ErtrlError):
    """A dataset file is missing, truncated, or fails its checksum."""


class TrainingDiverged(ErtrlError):
    """A loss became NaN or infinite; the run is marked failed, other runs go on."""
