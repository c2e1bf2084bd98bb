"""Hardware-free compiler estimates for NPU targets (``access = "estimate"``)."""
