"""Where the lake lives: local folders and object stores."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

from lake.errors import LakeNotWritable

__all__ = ["ensure_writable", "is_local"]


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
