"""mmdfkd's version (setup.py reads it; also `mmdfkd.__version__`)."""
__version__ = '0.1.0'
