"""Executors run a list of RunSpecs: ``local`` (in-process, sequential) and ``ray`` (optional)."""
