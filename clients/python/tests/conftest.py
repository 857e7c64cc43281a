"""Puts clients/python on sys.path, so the tests import the package from the
tree (there is no install step: no PyPI, no pip)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
