"""ablate: controlled ablations for retrieval models, with seed-aware paired statistics.

Data flows one way: CLI -> study spec -> scheduler -> trial (train -> evaluate -> store) -> analysis -> report.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # ``ablate.open(url)`` without importing polars/optuna on ``import ablate``.
    if name == "open":
        from ablate.query import open_database

        return open_database
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")
