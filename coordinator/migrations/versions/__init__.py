"""One module per schema revision, oldest first (``rev_NNNN_*.py``)."""
