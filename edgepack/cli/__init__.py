"""The command line: one module per command; the library does the work."""
