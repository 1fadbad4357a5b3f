"""What a user runs: the command line, the explore app, notebook reproduction, Colab notebooks."""
