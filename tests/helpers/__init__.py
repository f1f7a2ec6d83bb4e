"""Helpers shared by test modules: import them from here, never from another test module
or from a conftest (pytest may import those twice, under another name)."""
