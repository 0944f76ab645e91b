"""The sign-in pipeline that every way of proving who you are feeds into (see pipeline.py)."""
