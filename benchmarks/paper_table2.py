"""The paper's published Table 2 (shallow 2+2-layer models, blocks of 512), as data for the Table 2
reproduction of bench_models.py --setting shallow.

Source: Pietruszka et al., "Sparsifying Transformer Models with Trainable Representation Pooling", Table 2
(/work/shared/paper/sparsifying-transformer-models-with-trainable-representation-pooling.txt, the table
after "Table 2: Scores, complexity and benchmark ..."). Times in seconds on one A100 of a DGX-A100, full
precision (Appendix C): training per batch of 64 documents, inference per batch of 8 with 512 forced output
tokens (§5 "Time benchmarks").
"""

from __future__ import annotations

import dataclasses

PAPER_TRAIN_BATCH = 64
PAPER_GEN_BATCH = 8
PAPER_GEN_TOKENS = 512


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One row of Table 2: its number (preset table2-<number>), architecture, lengths and published
    numbers (training s per batch of 64, inference s per batch of 8, ROUGE-1/2 on arXiv)."""

    number: int
    architecture: str
    encoder: str  # as printed, e.g. "8k -> 2k" (an arrow: pooling inside the encoder)
    decoder: str  # vectors passed to the decoder
    n: int  # input tokens
    train_s: float
    gen_s: float
    rouge1: float
    rouge2: float

    @property
    def preset(self) -> str:
        return f"table2-{self.number}"


ROWS: tuple[PaperRow, ...] = tuple(
    PaperRow(*fields)
    for fields in (
        (1, "Vanilla", "512", "512", 512, 0.13, 4.23, 28.1, 8.3),
        (2, "Vanilla", "2k", "2k", 2048, 0.60, 5.77, 38.2, 14.0),
        (3, "Vanilla", "8k", "8k", 8192, 4.46, 13.27, 41.8, 16.1),
        (4, "Blockwise", "2k", "2k", 2048, 0.31, 5.28, 38.6, 14.1),
        (5, "Blockwise", "8k", "8k", 8192, 0.85, 11.49, 41.9, 16.7),
        (6, "Transpooler", "2k", "512", 2048, 0.54, 4.24, 39.1, 14.6),
        (7, "Transpooler", "8k", "512", 8192, 1.44, 4.28, 41.8, 16.4),
        (8, "Transpooler", "8k", "2k", 8192, 1.26, 5.51, 42.7, 16.7),
        (9, "LSH", "512", "512", 512, 0.19, 4.27, 28.5, 7.5),
        (10, "LSH", "2k", "2k", 2048, 0.56, 5.92, 33.6, 10.5),
        (11, "LSH", "8k", "8k", 8192, 1.69, 13.41, 35.7, 11.2),
        (12, "Efficient", "512", "512", 512, 0.12, 4.20, 28.4, 7.8),
        (13, "Efficient", "2k", "2k", 2048, 0.29, 5.91, 34.1, 10.4),
        (14, "Efficient", "8k", "8k", 8192, 0.82, 13.75, 35.0, 10.8),
        (15, "PoWER-like", "2k -> 1k", "512", 2048, 1.04, 4.28, 35.3, 12.7),
        (16, "PoWER-like", "8k -> 2k", "512", 8192, 1.87, 5.33, 36.9, 14.1),
        (17, "PoWER-like", "8k -> 4k", "2k", 8192, 2.06, 6.92, 42.0, 16.5),
        (18, "Funnel-like", "2k -> 512", "2k", 2048, 0.61, 4.01, 38.6, 14.3),
        (19, "Funnel-like", "8k -> 512", "8k", 8192, 1.78, 4.03, 41.8, 16.5),
        (20, "Funnel-like", "8k -> 2k", "8k", 8192, 1.53, 5.25, 42.0, 16.4),
    )
)

# The reference row of each input length for the ratios. The paper has no Blockwise row at 512 tokens:
# there a single block of 512 covers the input, so Blockwise *is* Vanilla (row 1).
BLOCKWISE_ROW = {512: 1, 2048: 4, 8192: 5}
# A row is flagged when its ratio to Blockwise differs from the paper's by more than this fraction.
RATIO_TOLERANCE = 0.30


def row(number: int) -> PaperRow:
    """The paper's row `number` (1..20)."""
    return ROWS[number - 1]
