"""Corral: a self-hosted serverless platform that speaks AWS Lambda's protocols.

Layers, from the edge inwards: ``http`` (wire) -> ``control`` / ``invoke`` (services)
-> ``fleet`` (execution environments) -> ``store`` (SQLite + code blobs). ``model`` is
pure and may be imported by all of them. ``app`` is the one composition root.
"""

__version__ = "0.1.0"
