"""Pyramidion: long-document encoder-decoders with trainable representation pooling, for transformers."""
