"""What the API and the workers both report about themselves: metrics (``metrics.py``)."""
