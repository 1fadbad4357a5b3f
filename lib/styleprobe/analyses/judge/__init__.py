"""The external LLM judge: prompts and cache, backends, and its statistics."""
