"""The network: Table 6 backbones and the log-mel, the five event layers (eqs. 1-5), checkpoints. No media I/O."""
