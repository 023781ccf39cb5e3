"""Parameter object that carries one classification run from the UI/algorithm/CLI to the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class ClassifyParams:
    """Settings of one classification run (paths are plain file paths; no QGIS objects)."""

    optical: str
    sar: str
    output: str
    checkpoint: Optional[str] = None
    optical_bands: Optional[List[int]] = None
    sar_bands: Optional[List[int]] = None
    optical_offset: Optional[float] = None  # added to the optical values before scaling; None: from the file
    tile_size: Optional[int] = None
    overlap: Optional[int] = None
    batch_size: int = 4
    device: str = "auto"
    threads: Optional[int] = None
    confidence: Optional[str] = None
    reliance: Optional[str] = None
    reference: Optional[str] = None
    summary_json: Optional[str] = None
    report: Optional[str] = None
    explainer: Optional[str] = None
