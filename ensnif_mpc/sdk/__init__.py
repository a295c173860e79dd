"""The analyst SDK (above every service: nothing in the core, the coordinator or a node imports
it).
"""
