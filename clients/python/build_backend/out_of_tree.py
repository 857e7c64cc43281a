"""setuptools' build backend, run on a copy of this directory.

setuptools builds in the source tree: it leaves build/ and
session_registry.egg-info/ behind, so `pip install ./clients/python` would
write into a clone. Each hook here copies the package's sources to a
temporary directory and runs setuptools.build_meta's hook there; the wheel,
sdist or metadata still goes where the frontend (pip) asked.
"""
import contextlib
import os
import shutil
import tempfile

from setuptools import build_meta as _setuptools

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests")


@contextlib.contextmanager
def _in_copy():
    with tempfile.TemporaryDirectory(prefix="session-registry-build-") as tmp:
        copy = os.path.join(tmp, "src")
        shutil.copytree(_HERE, copy, ignore=_IGNORE)
        cwd = os.getcwd()
        os.chdir(copy)
        try:
            yield
        finally:
            os.chdir(cwd)


def _absolute(directory):
    return os.path.abspath(directory)


def get_requires_for_build_wheel(config_settings=None):
    with _in_copy():
        return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    with _in_copy():
        return _setuptools.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    metadata_directory = _absolute(metadata_directory)
    with _in_copy():
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel_directory = _absolute(wheel_directory)
    if metadata_directory is not None:
        metadata_directory = _absolute(metadata_directory)
    with _in_copy():
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    sdist_directory = _absolute(sdist_directory)
    with _in_copy():
        return _setuptools.build_sdist(sdist_directory, config_settings)


# An editable install points into the source tree by design, egg-info and all.
get_requires_for_build_editable = _setuptools.get_requires_for_build_editable
prepare_metadata_for_build_editable = _setuptools.prepare_metadata_for_build_editable
build_editable = _setuptools.build_editable
