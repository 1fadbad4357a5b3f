"""styleprobe: behavioural fingerprints of chat LLMs from their hidden states."""

__version__ = "0.1.0"
