"""The board commands moved to hsmtls.cli.board; this name stays only while
tests/unit/test_boards.py (maintained with the board tools) imports `board` from it."""

from hsmtls.cli.board import board

__all__ = ["board"]
