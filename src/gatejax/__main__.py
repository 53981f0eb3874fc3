from gatejax.cli import entry

entry()
