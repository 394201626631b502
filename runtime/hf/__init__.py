"""The public diffusion coders (Dream, Dream-Coder, DiffuCoder, Open-dCoder, LLaDA) from a local
Hugging Face checkpoint directory: config and safetensors reading (config.py), the network in
PyTorch (model.py), each family's infilling layout and tokenizer (prompt.py), the approximate
context cache backend (backend.py) and its ONNX Runtime ops (ort.py)."""
