"""The one root error of vision/: every failure a user can cause surfaces as a VisionError."""


class VisionError(Exception):
    """Bad video, stream, telemetry or configuration; the message names what is wrong."""
