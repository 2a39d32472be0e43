"""avaudit: audit audio-visual video datasets with the event-specific fusion network."""
import os

# Decoding workers and the network share the CPU cores during an audit. OpenMP threads that spin
# after each parallel op take those cores from the decoders; sleeping threads give them back
# (`bias` over 128 sample clips on 2 cores: 12.5-13.4 s with PASSIVE, 14.1-16.1 s with ACTIVE).
# torch's OpenMP reads it when torch is imported, so it is set here, before any avaudit module
# imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
