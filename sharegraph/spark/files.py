"""Input directories given as URIs (``s3a://bucket/exports/``, ``hdfs://nn/exports/``,
``file:///data/exports/``) for the Spark engine.

Spark reads the files itself through Hadoop. What the driver reads first (the listing, the
mapping file, a 1 MiB sample for the encoding, the header line, the content hash of each
file) goes through :class:`RemotePath`, a small ``pathlib.Path`` look-alike over a
``pyarrow.fs`` file system, so ``sharegraph.ingest.sources`` discovers and checks a bucket
exactly as it does a local folder. Hadoop's ``s3a``/``s3n`` schemes are ``s3`` to pyarrow.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow.fs as pafs

_PYARROW_SCHEMES = {"s3a": "s3", "s3n": "s3"}


@dataclass(frozen=True)
class RemotePath:
    """One file or folder of a URI input directory; ``str()`` is the URI Spark reads."""

    fs: pafs.FileSystem
    path: str
    """the file system's own path (no scheme)"""
    uri: str

    @classmethod
    def of(cls, uri: str) -> RemotePath:
        scheme, rest = uri.split("://", 1)
        fs, path = pafs.FileSystem.from_uri(f"{_PYARROW_SCHEMES.get(scheme, scheme)}://{rest}")
        return cls(fs, path.rstrip("/") or "/", uri.rstrip("/"))

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(self.fs, f"{self.path}/{name}", f"{self.uri}/{name}")

    def _kind(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def is_dir(self) -> bool:
        return self._kind() == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._kind() == pafs.FileType.File

    def iterdir(self) -> Iterator[RemotePath]:
        for info in self.fs.get_file_info(pafs.FileSelector(self.path)):
            yield self / info.base_name

    def open(self, mode: str = "rb") -> IO[bytes]:
        if mode != "rb":
            raise ValueError(f"{self.uri}: input files are opened read-only, as bytes")
        return self.fs.open_input_stream(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        with self.open() as fh:
            return io.TextIOWrapper(fh, encoding=encoding).read()
