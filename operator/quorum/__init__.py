"""Quorum: many small open language models working together on Kubernetes."""

__version__ = "0.1.0"
