"""``python -m dejavu_tune.report``: a search's trials as the supplement's ablation tables
(``ablation``), in Markdown, LaTeX or CSV (``formats``), and as a trend plot (``plot``)."""

from dejavu_tune.report.ablation import (
    ReportError,
    Trial,
    Trials,
    ablation,
    ablation_table,
    build_parser,
    collect,
    main,
)

__all__ = ["ReportError", "Trial", "Trials", "collect", "ablation", "ablation_table",
           "build_parser", "main"]
