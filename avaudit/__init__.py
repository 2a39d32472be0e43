"""avaudit: audit audio-visual video datasets with the event-specific fusion network."""
import os

# Decoding workers and the network share the CPU cores during an audit. OpenMP threads that spin
# after each parallel op take those cores from the decoders; sleeping threads give them back
# (benchmarks/pipeline.py measures the difference). Read by torch's OpenMP when torch is imported,
# so it is set here, before any avaudit module imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
