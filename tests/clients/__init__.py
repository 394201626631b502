"""Drivers for the language-server tests: a raw JSON-RPC session and real editors (Neovim, Emacs, Node)."""
