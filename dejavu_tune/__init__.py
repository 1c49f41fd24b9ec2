"""dejavu-tune: hyperparameter search for DejaVu conditional regenerative learning.

Importing the package is cheap and has no side effects: submodules are imported
where they are used (``dejavu_tune.train``, ``dejavu_tune.method.redaction``, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
