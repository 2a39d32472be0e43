"""Peak memory of reading DATA stored as WebDataset shards or Parquet, from 1 to 20 shards: flat.

Each shard holds 64 members of 512 KiB (32 MiB a shard, 640 MiB for 20), random bytes in place of
videos, so what is measured is avaudit's reading, not a decoder's: the listing (media/sources.read_data)
and every video read into memory the way a decoding worker reads it (sources.open_member), one after
another. Each count runs in a fresh process, whose peak RSS is printed beside the bytes it read.

    python benchmarks/shard_streaming.py [--shards 1 5 20]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

MEMBERS, MEMBER_BYTES = 64, 512 * 1024


def make_shards(folder: Path, n: int) -> None:
    """`n` tar shards and `n` Parquet files (row groups of 8 rows) of MEMBERS random 'videos' each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        blobs = [os.urandom(MEMBER_BYTES) for _ in range(MEMBERS)]
        with tarfile.open(folder / f"train-{i:06d}.tar", "w") as tar:
            for j, blob in enumerate(blobs):
                for name, data in ((f"{i:06d}-{j:04d}.mp4", blob), (f"{i:06d}-{j:04d}.cls", b"dog")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        table = pa.table({"video": [{"bytes": b, "path": f"{i}-{j}.mp4"} for j, b in enumerate(blobs)],
                          "label": ["dog"] * MEMBERS})
        (folder / "parquet").mkdir(exist_ok=True)
        pq.write_table(table, folder / "parquet" / f"train-{i:05d}.parquet", row_group_size=8)


def child(form: str, n: int, folder: Path) -> None:
    """Read `n` shards of `form` as an audit does, and print a JSON line of what it cost."""
    from avaudit.media.sources import open_member, read_data

    started = time.perf_counter()
    data = folder / f"train-{{000000..{n - 1:06d}}}.tar" if form == "webdataset" else folder / "parquet"
    if form == "parquet":  # a folder of only the first n files
        data = folder / f"parquet-{n}"
        data.mkdir(exist_ok=True)
        for i in range(n):
            link = data / f"train-{i:05d}.parquet"
            if not link.exists():
                link.symlink_to(folder / "parquet" / link.name)
    table = read_data(data).table
    total = 0
    for path, member, offset, size in zip(table["path"], table["member"], table["offset"].tolist(),
                                          table["size"].tolist()):
        total += len(open_member(path, member, offset, size).data)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"form": form, "shards": n, "rows": len(table), "read_mib": total / 2**20,
                      "peak_rss_mib": peak_mib, "seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        make_shards(Path(tmp), max(args.shards))
        print("| form | shards | rows | read | peak RSS | seconds |\n| --- | --- | --- | --- | --- | --- |")
        for form in ("webdataset", "parquet"):
            for n in args.shards:
                out = subprocess.run([sys.executable, __file__, "--child", form, str(n), tmp], check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                print(f"| {form} | {n} | {r['rows']:,} | {r['read_mib']:,.0f} MiB | {r['peak_rss_mib']:,.0f} MiB | "
                      f"{r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
