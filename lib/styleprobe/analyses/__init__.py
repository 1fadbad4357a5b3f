"""One module per analysis; each runs on a Workspace and returns a typed Result."""
