"""Rendering a checked plan: admission to render slots, single flight, and the render itself."""
