"""The plugin tests' inner project (fake models, pytester) for the HTML report's browser tests."""

from plugin.conftest import _heavy_imports, project  # noqa: F401  (fixtures, re-exported for tests/browser)
