"""HTTP surfaces: the Lambda REST API, the Runtime API, function URLs; translation only."""
