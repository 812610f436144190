"""The fleet core, pure: targets, each thing's state and the counting rules, events parsed.

And the one lock where the sources' updates meet (shared.py).
"""
