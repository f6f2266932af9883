"""Model in: read what the user brings (load), quantize it to full int8 with TensorFlow in a worker (quantize,
optimize, tfenv), and the host reference every build is checked against (reference: TFLM)."""
