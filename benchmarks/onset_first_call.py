"""First-call cost of onset detection in a fresh process: librosa (numba) against avaudit's numpy onsets.

Each row is a new Python process that imports the onset code and detects the onsets of one 10-s clip
(`tests/data/realmedia/torchcodec_nasa_13013.mp4`, 16 kHz, hop 160), timed inside the process, start-up of
Python itself excluded. librosa runs on an empty NUMBA_CACHE_DIR (a fresh install: every numba function
of librosa that its import compiles, written to the cache) and then again on that cache (warm); avaudit
never compiles anything. librosa is a test extra: `pip install -c constraints.txt ".[test]"`.

    python benchmarks/onset_first_call.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "tests" / "data" / "realmedia" / "torchcodec_nasa_13013.mp4"

PROBE = """
import json, sys, time
from avaudit.media import pyav
audio, _, _ = pyav.read_audio(sys.argv[2], pyav.probe(sys.argv[2]), sample_rate=16000, start=0.0, seconds=10.0,
                              stop=10.0)
wall, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "librosa":
    import librosa.onset
    envelope = librosa.onset.onset_strength(y=audio, sr=16000, hop_length=160)
    times = librosa.onset.onset_detect(onset_envelope=envelope, sr=16000, hop_length=160, units="time")
else:
    from avaudit.media.onsets import onset_detect, onset_strength
    times = onset_detect(onset_strength(audio, sr=16000, hop_length=160), sr=16000, hop_length=160)
first = (time.perf_counter() - wall, time.process_time() - cpu)
wall, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "librosa":
    envelope = librosa.onset.onset_strength(y=audio, sr=16000, hop_length=160)
    librosa.onset.onset_detect(onset_envelope=envelope, sr=16000, hop_length=160, units="time")
else:
    onset_detect(onset_strength(audio, sr=16000, hop_length=160), sr=16000, hop_length=160)
print(json.dumps({"first": first, "second": (time.perf_counter() - wall, time.process_time() - cpu),
                  "onsets": len(times), "jit": "numba" in sys.modules}))
"""


def probe(kind: str, numba_cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(CLIP)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| code | numba cache | first call: wall s | first call: CPU s | next call: CPU s | onsets | numba loaded |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rows = [("librosa 0.11.0", "empty", probe("librosa", Path(tmp))),
                    ("librosa 0.11.0", "warm", probe("librosa", Path(tmp))),
                    ("avaudit numpy", "empty", probe("avaudit", Path(tmp) / "unused"))]
        for code, cache, r in rows:
            print(f"| {code} | {cache} | {r['first'][0]:.2f} | {r['first'][1]:.2f} | {r['second'][1]:.3f} | "
                  f"{r['onsets']} | {'yes' if r['jit'] else 'no'} |")


if __name__ == "__main__":
    main()
