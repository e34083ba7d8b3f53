"""The bridge's rules: plain functions over plain data, with no awaits and no I/O."""
