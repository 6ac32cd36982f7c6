"""The error every checkpoint reader and writer in this package raises."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or written as asked."""
