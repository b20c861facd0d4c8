"""The package's version, in a module of its own so that code below the package root can
read it without importing ``brats_goat/__init__.py`` (an arrow back up)."""

__version__ = "0.1.0"
