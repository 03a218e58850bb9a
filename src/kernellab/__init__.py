"""kernellab: learn convolution kernels by gradient descent, configured with Hydra, logged to TensorBoard."""

__version__ = "0.1.0"
