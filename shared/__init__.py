"""Contracts shared by the API and the worker: stdlib and msgspec only."""
