"""``python -m pyramidion_hf.analysis``: the ``pyramidion-explain`` command line."""

from .cli import main

main()
