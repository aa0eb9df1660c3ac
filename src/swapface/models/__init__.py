"""Model catalogue, model files (locate, verify, import, download) and ONNX Runtime sessions."""
