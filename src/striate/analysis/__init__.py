"""Analysis tools: receptive fields and the Toeplitz form of convolutions."""
