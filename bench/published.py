"""What the checks against published rows share: the tolerance of a published order, rank correlation, and the
model-file size check that tells when a publication measured another network."""

from __future__ import annotations

# Two published latencies closer than this share are within measurement noise: the publication does not order them.
ORDER_TOLERANCE = 0.05


SIZE_TOLERANCE = 0.10


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (no ties expected in latencies)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def file_size_mismatch(row: dict[str, str], params: int) -> str:
    """Why a row's published model file cannot be the architecture we predict, or '' (no stated size, or it fits).

    A publication that states its model file's size (MB) fixes its parameter
    count: size / bytes per weight. More than 10% away from our architecture's
    parameters means the measured network is another one.
    """
    if not row.get("published_mb"):
        return ""
    from core.precisions import precision

    ours_mb = params * precision(row["precision"]).weight_bytes / 1e6
    stated = float(row["published_mb"])
    if abs(stated / ours_mb - 1) <= SIZE_TOLERANCE:
        return ""
    return f"its file is {stated:g} MB, ours would be {ours_mb:.1f} MB ({params / 1e6:.1f} M weights)"
