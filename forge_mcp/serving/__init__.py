"""Serving: model versions behind an OpenAI-compatible endpoint, as long-lived jobs."""
