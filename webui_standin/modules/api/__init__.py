"""Stand-in for the WebUI's modules/api package."""
