"""The one root error of vision/: every failure a user can cause surfaces as a VisionError."""


class VisionError(Exception):
    """Bad video, stream, telemetry or configuration; the message names what is wrong."""


class ModelError(VisionError):
    """A detector model file that cannot be used; the message names the file and the fault."""


class ModelMissingError(ModelError):
    """The model file is not in the models directory (or no directory is configured)."""


class ModelChecksumError(ModelError):
    """The file's sha256 is not the one this release knows for that file name."""


class ModelLayoutError(ModelError):
    """The model's input or output shape is not the layout its decoder reads."""
