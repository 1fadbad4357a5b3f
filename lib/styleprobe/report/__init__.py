"""What the analyses become: the results summary, the paper's numbers and tables, figures."""
