"""Moved to tests/support/required_tools.py; this name stays only while
tests/unit/test_boards.py (maintained with the board tools) imports it from here."""

from support.required_tools import have_tool, require_tool, requires_tool, tool_path

__all__ = ["have_tool", "require_tool", "requires_tool", "tool_path"]
