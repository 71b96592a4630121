"""Publishing a trained model: the model card, the Hub repository export, the upload and the CLI."""

from .export import *  # noqa: F401,F403
