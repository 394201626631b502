"""Quicksilver's language server: LSP over stdio in front of the completion engine."""

__version__ = "0.1.0"
