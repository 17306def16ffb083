"""Real weights from local files: GGUF (llama.cpp), Hugging Face safetensors, Orbax checkpoints."""
