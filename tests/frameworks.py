"""The ML frameworks a process may load only when it converts or runs a model: tests and the
startup benchmark check that the commands and builds that need none load none."""

ML_FRAMEWORKS = (
    "tensorflow",
    "keras",
    "openvino",
    "onnxruntime",
    "onnx",
    "tf2onnx",
    "nncf",
    "ai_edge_litert",
    "torch",
)
