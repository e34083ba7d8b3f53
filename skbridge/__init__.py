"""skbridge: run customer support from Slack, one channel per customer."""

__version__ = "0.1.0"
