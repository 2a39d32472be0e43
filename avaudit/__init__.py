"""avaudit: audit audio-visual video datasets with the event-specific fusion network.

    import avaudit
    run = avaudit.bias("sample_videos/")          # an AuditRun: .tables, .summary (a BiasSummary), .skipped
    run.tables["bias_categories.csv"]             # a DataFrame

The commands are imported on first use, so `import avaudit` (and the CLI's --help) stays light.
Under torchrun, every rank but 0 raises NotRankZero once its shard is in the cache: rank 0 writes.
"""
_HOMES = {"bias": "avaudit.commands", "predict": "avaudit.commands", "missing_labels": "avaudit.commands",
          "retarget": "avaudit.commands", "quality": "avaudit.commands", "train": "avaudit.training.command",
          "load_model": "avaudit.commands",
          "AuditOptions": "avaudit.options", "Thresholds": "avaudit.options", "AuditRun": "avaudit.runs",
          "AvauditError": "avaudit.errors", "UsageError": "avaudit.errors", "ParameterError": "avaudit.errors",
          "NotRankZero": "avaudit.errors"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'avaudit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
