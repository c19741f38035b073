"""Web chat over the rag engine (Gradio): `ui.app.serve(index_dir, host, port)` is what `rag serve` runs."""
