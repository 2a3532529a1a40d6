"""omicsfs: AWS HealthOmics sequence and reference stores as a FUSE filesystem.

The package has two halves that never import each other:
- the filesystem (``omicsfs.fuse_ops``, ``omicsfs.core``, ``omicsfs.backend``), and
- the local HealthOmics storage service (``omicsfs.localservice``), which speaks the real
  rest-json wire protocol so the real boto3 client runs against it unchanged.
"""

__version__ = "0.1.0"
