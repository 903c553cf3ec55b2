"""The clip port (base.py) and its backends, one a file."""
