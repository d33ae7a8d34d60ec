# setup.py exists only to register the cffi builder: metadata lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["evloop/_build.py:ffibuilder"])
