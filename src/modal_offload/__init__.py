"""modal-offload: run heavy work and terminal commands remotely under a daily budget."""

__version__ = "0.1.0"
