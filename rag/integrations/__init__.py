"""Adapters that put this library under other frameworks; each module imports its framework, so import
the one you need (`from rag.integrations.llama_index import RagRetriever`)."""
