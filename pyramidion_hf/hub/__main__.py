"""``python -m pyramidion_hf.hub``: the ``pyramidion-hub`` command line."""

from .cli import main

main()
