"""OpenFlow wire protocol: a pure-Python codec for OpenFlow 1.3 and 1.0 (``codec`` gathers it).

Pure functions and data; any thread.
"""
