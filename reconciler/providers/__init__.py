"""Adapters: one module per external system, translating the world into facts and errors."""
