"""The exceptions PrivaStream raises; each message says what was wrong and, where known, the state."""


class PrivaStreamError(Exception):
    """Base class: a problem we can explain to the user without a traceback."""


class ModelLoadError(PrivaStreamError):
    """A model file is missing, altered or cannot be loaded."""


class ProtocolError(PrivaStreamError):
    """A message or shared-memory frame does not follow the wire protocol."""


class AuthError(PrivaStreamError):
    """The peer could not prove that it knows the server's token."""


class StateError(PrivaStreamError):
    """An operation was attempted in a state that does not allow it."""


class MediaError(PrivaStreamError):
    """A video or audio input cannot be read, or an output cannot be written."""
