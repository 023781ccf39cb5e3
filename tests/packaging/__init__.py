"""Tests of what a user installs: the plugin ZIP, its metadata, the dependency installer, the sources."""
