"""The engine: loading models, chat prompts, sampling, batched generation, hooked extraction, the resumable
run stages and the atomic store. It imports nothing from the layers above it."""
