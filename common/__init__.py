"""Small typed values and geodesy shared by every package.

Packages meet only through these values (`Pose`, `Mission`, `Incident`, `Alert`, ...), never
through each other's internals.
"""
