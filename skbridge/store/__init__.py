"""All state lives in one SQLite file; this package is the only code that touches it."""
