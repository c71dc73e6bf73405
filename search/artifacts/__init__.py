"""What a study ships: exported plans, ONNX graphs, .tflite files and model cards; a plan rebuilt and scored (`search apply`)."""
