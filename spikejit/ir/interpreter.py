"""Placeholder while this module is being written in parallel (replaced in this session)."""

def interpret(*a, **k):
    raise NotImplementedError
