"""The `idf` command-line interface."""
