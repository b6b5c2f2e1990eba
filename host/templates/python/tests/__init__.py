"""The routes' tests: `python3 -m unittest` from the project's directory finds them."""
