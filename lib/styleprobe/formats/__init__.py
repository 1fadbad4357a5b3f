"""Files from and for other tools: GGUF control vectors, the original study's files, chat logs."""
