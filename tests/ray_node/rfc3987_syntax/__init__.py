"""Left out of the test cluster's processes (tests/conftest.py puts this folder first on their path).

jsonschema imports rfc3987_syntax when it is installed (JupyterLab's dependencies install it), and that
builds a Lark grammar at import: 1.8 of the 2.5 CPU seconds every Ray process spends importing `ray`. On a
busy machine that makes the node's agent miss the raylet's fixed 15-second window. Without it jsonschema
only skips checking the "iri" string format, which no Ray code the tests run uses."""

raise ImportError("rfc3987_syntax is left out of the test cluster's processes")
