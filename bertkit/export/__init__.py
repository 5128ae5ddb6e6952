"""Export to ONNX (dynamic axes, checked against PyTorch), int8 quantization, and the onnxruntime model.

Import the submodules: `bertkit.export.onnx`, `bertkit.export.quantize`, `bertkit.export.runtime`
(onnx and onnxruntime come with the `export` extra and are imported only there).
"""
