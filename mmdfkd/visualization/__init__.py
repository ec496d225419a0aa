"""Visualizers: mmdfkd uses mmpretrains through the registry parents."""
