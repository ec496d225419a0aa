"""Metrics: mmdfkd uses mmpretrains (e.g. ``Accuracy``) through the registry parents."""
