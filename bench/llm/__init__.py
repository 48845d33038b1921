"""LLM-PP machinery: the paper's prompts, SDK backends, a response cache and an async client."""
