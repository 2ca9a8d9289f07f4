"""Stand-in for the WebUI's ``modules`` package (v1.10.1)."""
