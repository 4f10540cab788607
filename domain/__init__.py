"""The pure model: profiles, events, consent, purposes, data categories, callers, errors and ports.

Nothing here imports the rest of the project or any infrastructure.
"""
