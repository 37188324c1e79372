"""pytest configuration of slogate's own test suite (tests/); scenario runs load it too, harmlessly."""

pytest_plugins = ["pytester"]
