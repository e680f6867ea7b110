"""The typed results of every mode, as ``report`` prints, saves and charts them.

Frozen dataclasses whose field names are the keys of ``report.json`` (``encode.to_json``
writes them in field order), so a renamed field is a renamed key: see loadtest/README.md.
"""
