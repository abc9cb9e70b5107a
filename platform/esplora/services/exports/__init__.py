"""Snapshot exports: a frozen snapshot written in the formats trainers read.

One module per format (``to_parquet``, ``to_webdataset``, ``to_imagefolder``, ``to_kohya``,
``to_coco``), one sample per member with its boxes and relations, a dataset card in every
export. Exports read only the frozen member rows, stream them in pages, skip (and name) what
cannot be read, and appear at ``out`` only once complete. Jobs run them in the background.
"""

from esplora.services.exports.common import ExportOptions, ProgressCallback, Skip
from esplora.services.exports.jobs import (
    LIVE_WITHIN,
    ExportJobInfo,
    export_job,
    export_jobs,
    run_export_job,
    start_export,
)
from esplora.services.exports.runner import (
    FORMATS,
    ExportReport,
    check_target,
    export_snapshot,
    format_spec,
)

__all__ = [
    "FORMATS",
    "LIVE_WITHIN",
    "ExportJobInfo",
    "ExportOptions",
    "ExportReport",
    "ProgressCallback",
    "Skip",
    "check_target",
    "export_job",
    "export_jobs",
    "export_snapshot",
    "format_spec",
    "run_export_job",
    "start_export",
]
