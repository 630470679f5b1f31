"""ablate: controlled ablations for retrieval models, with seed-aware paired statistics.

Data flows one way: CLI -> study spec -> scheduler -> trial (train -> evaluate -> store) -> analysis -> report.
"""

__version__ = "0.1.0"
