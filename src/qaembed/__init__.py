"""qaembed: fine-tune text-embedding models for question-answer retrieval and compare losses fairly."""

__version__ = "0.1.0"
