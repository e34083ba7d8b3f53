"""Slack: the Web API, Socket Mode, and the workspace skbridge lives in."""
