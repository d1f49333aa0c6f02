"""The test suite; a package, so that its helper modules are imported one way: ``from tests.helpers import ...``."""
