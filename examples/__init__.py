"""Example dynamic PyTorch programs (see ``examples/dynn`` for the model zoo)."""
