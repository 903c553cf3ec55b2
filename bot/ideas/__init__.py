"""Followers' replies become ideas: harvest (moderation, one idea per person, clustering), and
the optional OpenAI-compatible moderation and embedding backends."""
