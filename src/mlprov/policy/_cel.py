"""CEL expressions (Common Expression Language) through ``cel-python``.

``cel-python`` (import name ``celpy``) is a core dependency, imported only here and only
when a policy has a ``cel`` requirement: it pulls in ``lark`` and ``pendulum``.

An expression must evaluate to ``true`` to pass. Anything else fails the requirement:
``false``, a value that is not a boolean, an evaluation error (a missing key, a type
mismatch, a division by zero): CEL returns errors as values, and both the returned and
the raised kind are a denial (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlprov.errors import ConfigError

__all__ = ["CompiledExpression", "compile_expression"]


def _celpy() -> Any:
    try:
        import celpy  # noqa: PLC0415 - lazy, see the module docstring
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "the 'cel-python' package, a dependency of mlprov, is missing: "
            "pip install 'cel-python>=0.5,<0.6'"
        ) from e
    return celpy


class CompiledExpression:
    """A parsed CEL expression, ready to evaluate over an activation of JSON values."""

    def __init__(self, source: str, program: Any) -> None:
        self.source = source
        self._program = program

    def evaluate(self, activation: Mapping[str, Any]) -> tuple[bool, str]:
        """(passed, one line why). Never raises for an expression's own failure."""
        celpy = _celpy()
        from celpy import celtypes  # noqa: PLC0415

        try:
            values = {name: celpy.json_to_cel(value) for name, value in activation.items()}
            result = self._program.evaluate(values)
        except Exception as e:  # fail closed: any error while evaluating is a denial
            return False, f"CEL evaluation error: {_one_line(e)}"
        if isinstance(result, celpy.CELEvalError):
            return False, f"CEL evaluation error: {_one_line(result)}"
        if isinstance(result, celtypes.BoolType):
            if bool(result):
                return True, f"CEL {self.source!r} is true"
            return False, f"CEL {self.source!r} is false"
        return False, f"CEL {self.source!r} gave {type(result).__name__}, not a boolean"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def compile_expression(source: str) -> CompiledExpression:
    """Parse ``source``; ValueError (one line) when it is not CEL."""
    celpy = _celpy()
    environment = celpy.Environment()
    try:
        tree = environment.compile(source)
        program = environment.program(tree)
    except Exception as e:  # celpy raises its parser's and lark's own types
        column = getattr(e, "column", None)
        where = f"syntax error at column {column}" if column else _one_line(e)
        raise ValueError(f"{source[:80]!r} is not a valid CEL expression: {where}") from e
    return CompiledExpression(source, program)
