"""Things that start several parts in order (`Session`, `Engines`) and must stop whatever did start, in
reverse, also when starting fails half-way."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, TypeVar

_S = TypeVar("_S", bound="Started")


class Started:
    """A context manager around ``_start``: each part it starts registers its stop on ``self._stack``; leaving
    the ``with`` block, or an error inside ``_start``, runs those stops in reverse."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __enter__(self: _S) -> _S:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _start(self) -> None:
        raise NotImplementedError
