"""Inference: decoding workers feed the network; logits cached per clip and read back first."""
