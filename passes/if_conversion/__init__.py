"""The rewrites of the `if-convert` pass (passes/if_convert.py), one concern per module."""
