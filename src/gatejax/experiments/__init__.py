"""Experiments behind the ``gatejax`` command and the report; each module is one experiment."""
