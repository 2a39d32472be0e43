"""The planted set packed as datasets are stored at scale: WebDataset tar shards and Hugging Face
style Parquet files (a `video` struct of bytes and path, a ClassLabel `label`), for the tests."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

MEDIA = (".mp4", ".mkv", ".webm", ".avi")


def clips_of(folder: Path) -> list[tuple[str, Path]]:
    """(label, file) of each clip of a category-folder set, in the folder's order."""
    return [(path.parent.name, path) for path in sorted(folder.glob("*/*")) if path.suffix in MEDIA]


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, out: Path, *, n_shards: int = 3, label_as: str = "cls", prefix: str = "train") -> list[Path]:
    """The clips of `folder` in `n_shards` tars `<prefix>-00000N.tar` under `out`, each sample a video
    member and its label as a .cls member or (`label_as="json"`) the .json's `label`."""
    clips = clips_of(folder)
    out.mkdir(parents=True, exist_ok=True)
    shards = [out / f"{prefix}-{i:06d}.tar" for i in range(n_shards)]
    for i, shard in enumerate(shards):
        with tarfile.open(shard, "w") as tar:
            for j in range(i, len(clips), n_shards):
                label, path = clips[j]
                key = f"s{j:05d}"
                add_member(tar, f"{key}{path.suffix}", path.read_bytes())
                if label_as == "json":
                    add_member(tar, f"{key}.json", json.dumps({"label": label, "source": path.name}).encode())
                else:
                    add_member(tar, f"{key}.cls", label.encode())
    return shards


def write_parquet(folder: Path, out: Path, *, n_files: int = 2, row_group_size: int = 5) -> list[Path]:
    """The clips of `folder` as Parquet files `train-0000N-of-0000M.parquet` the way datasets writes a
    video dataset: `video` struct<bytes, path>, `label` int64 with its ClassLabel names in the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    clips = clips_of(folder)
    names = sorted({label for label, _ in clips})
    features = {"video": {"_type": "Video"}, "label": {"names": names, "_type": "ClassLabel"}}
    schema = pa.schema([("video", pa.struct({"bytes": pa.binary(), "path": pa.string()})), ("label", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_files):
        part = clips[i::n_files]
        table = pa.table({"video": [{"bytes": p.read_bytes(), "path": p.name} for _, p in part],
                          "label": [names.index(label) for label, _ in part]}, schema=schema)
        files.append(out / f"train-{i:05d}-of-{n_files:05d}.parquet")
        pq.write_table(table, files[-1], row_group_size=row_group_size)
    return files
