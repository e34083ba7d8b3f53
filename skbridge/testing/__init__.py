"""Test helpers: in-process fakes of the services skbridge talks to."""
