"""The voice port (base.py) and its backends, one a file."""
