"""Where the lake lives: local folders and object stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable, write_deltalake

from lake.errors import LakeNotWritable, UnsafeCommits

__all__ = ["ensure_safe_commits", "ensure_writable", "filesystem", "is_local", "safe_options"]


def is_local(uri: str) -> bool:
    """Return True if ``uri`` is a local path (no scheme, or ``file://``).

    >>> is_local("./lake"), is_local("file:///tmp/lake"), is_local("s3://b/lake")
    (True, True, False)
    """
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def ensure_writable(root: str) -> None:
    """Create the local lake ``root`` if needed and prove it is writable.

    Object-store roots are not probed here: their credentials are checked by the
    first commit. Raises :class:`LakeNotWritable` naming the path and the cause.

    >>> import tempfile
    >>> ensure_writable(tempfile.mkdtemp() + "/lake")
    """
    if not is_local(root):
        return
    path = urlparse(root).path if root.startswith("file://") else root
    probe = os.path.join(path, f".eventlake-probe-{uuid.uuid4().hex}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as e:
        raise LakeNotWritable(root, e.strerror or str(e)) from e


def ensure_safe_commits(root: str, storage_options: Mapping[str, str] | None) -> None:
    """Prove, on an object store, that a writer with a stale view of a table cannot
    overwrite another's commit: two handles of a probe table append in turn, and both
    appends must be there (the second one retried as the next version). Local roots
    commit by atomic rename and are not probed. The probe is deleted after.

    Raises :class:`UnsafeCommits` saying what to configure.

    >>> ensure_safe_commits("./lake", None)  # local: nothing to prove
    """
    if is_local(root):
        return
    options = dict(storage_options or {}) or None
    probe = f"{root.rstrip('/')}/_eventlake_probe/{uuid.uuid4().hex}"
    one = pa.table({"writer": pa.array([0], pa.int8())})
    try:
        write_deltalake(probe, one, storage_options=options)
        first, second = (DeltaTable(probe, storage_options=options) for _ in range(2))
        write_deltalake(first, one, mode="append")
        write_deltalake(second, one, mode="append")  # its view is the version before
        final = DeltaTable(probe, storage_options=options)
        version, rows = final.version(), final.to_pyarrow_table().num_rows
    finally:
        try:
            fs, path = filesystem(probe, options)
            fs.delete_dir(path)
        except Exception:  # a leftover probe is harmless
            pass
    if (version, rows) != (2, 3):
        raise UnsafeCommits(root, f"after two appends at once: version {version}, {rows} of 3 rows")


def _option(options: Mapping[str, str], *names: str) -> str | None:
    """A storage option by any of its spellings (``AWS_REGION``, ``aws_region``, ``region``)."""
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        for key in (name, f"aws_{name}"):
            if key in lowered:
                return lowered[key]
    return None


def filesystem(root: str, options: Mapping[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """A PyArrow filesystem reaching ``root`` with deltalake's storage ``options`` (the
    same credentials and endpoint), and the root's path in it: for listing the lake.

    >>> fs, path = filesystem("s3://bucket/lake", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    ...                       "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k",
    ...                       "AWS_SECRET_ACCESS_KEY": "s"})
    >>> type(fs).__name__, path
    ('S3FileSystem', 'bucket/lake')
    """
    if is_local(root):
        path = urlparse(root).path if root.startswith("file://") else root
        return pafs.LocalFileSystem(), os.path.abspath(path)
    parsed = urlparse(root)
    if parsed.scheme in ("s3", "s3a") and options:
        endpoint = _option(options, "endpoint_url", "endpoint")
        scheme = urlparse(endpoint).scheme if endpoint else "https"
        fs = pafs.S3FileSystem(
            access_key=_option(options, "access_key_id"),
            secret_key=_option(options, "secret_access_key"),
            session_token=_option(options, "session_token", "token"),
            region=_option(options, "region", "default_region") or "us-east-1",
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme=scheme or "https",
        )
        return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
    fs, path = pafs.FileSystem.from_uri(root)
    return fs, path


def safe_options(root: str, options: Mapping[str, str] | None) -> dict[str, str] | None:
    """``options`` with what concurrent writers need: on S3, commits by conditional put
    (``aws_conditional_put=etag``) unless a locking provider or another conditional
    put mode is configured, so two writers never overwrite each other's commit.

    >>> safe_options("s3://b/lake", {"AWS_REGION": "eu-west-1"})["aws_conditional_put"]
    'etag'
    >>> safe_options("./lake", None) is None
    True
    """
    if urlparse(root).scheme not in ("s3", "s3a"):
        return dict(options) if options else None
    out = dict(options or {})
    if _option(out, "conditional_put", "s3_locking_provider") is None:
        out["aws_conditional_put"] = "etag"
    return out
