"""Operator commands beside ``run``: ``check``, ``status``, ``backup`` and ``demo``.

One module per command. ``check``, ``status`` and ``backup`` never change the
database, join a channel or send a message; ``demo`` talks only to in-process fakes.
"""
