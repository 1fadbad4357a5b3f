"""The external LLM judge: prompts, parsing and cache (core), backends, statistics (stats) and notebook 05's
analysis (analysis: `open_judge`, `run`, `JudgeResult`)."""
