"""`storybot demo`: a whole offline story told to a simulated audience."""
