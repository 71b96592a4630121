"""``python -m pyramidion_hf.hub``: the ``pyramidion-hub`` command line."""

from .export import main

main()
