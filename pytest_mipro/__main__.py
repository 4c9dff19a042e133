"""``python -m pytest_mipro diff OLD NEW``: the same as the ``pytest-mipro`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # importing this module (as tools that walk the package do) runs nothing
    sys.exit(main())
