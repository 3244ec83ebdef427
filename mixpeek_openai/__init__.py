"""Mixpeek retrievers as typed, safe tools for OpenAI models."""
