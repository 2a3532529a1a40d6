"""libfuse's own words on why a mount failed.

``pyfuse3.init`` raises only ``RuntimeError("fuse_session_new() failed")`` or
``"fuse_session_mount failed"``; the reason (``fuse: unknown option(s): `-o bogus'``, what
fusermount3 said) goes to file descriptor 2, which a detached daemon has pointed at its log or
/dev/null. ``CapturedStderr`` holds fd 2 in a temporary file for the duration of the call, so the
reason can go into the one line the user sees, and writes what it caught back to the real
stderr afterwards, so nothing is lost from the log.
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import TracebackType


class CapturedStderr:
    def __init__(self) -> None:
        self.text = ""
        self._saved = -1
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> CapturedStderr:
        sys.stderr.flush()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        data = self._file.read()
        self._file.close()
        if data:
            os.write(2, data)
        self.text = data.decode(errors="replace")

    def reason(self) -> str:
        """The last line libfuse or fusermount3 wrote, or "" when it wrote nothing."""
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return lines[-1] if lines else ""
