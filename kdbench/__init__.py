"""kdbench: distil, search, export, profile and rank small echocardiogram view classifiers."""

__version__ = "0.1.0"
