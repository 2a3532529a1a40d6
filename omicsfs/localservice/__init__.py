"""The local HealthOmics storage service (``omicsfs serve``).

Where things live:
- ``protocol``: routing, request parsing/validation and response serialization, all derived from
  botocore's own ``omics`` service model so a route or a constraint cannot drift from the client.
- ``errors``: the modeled error shapes.
- ``state``: SQLite persistence; ``blobs``: the bytes of read sets, references and upload parts.
- ``operations/``: one module per resource family, one function per API operation.
- ``processing``: what the service does to uploaded/imported files (format checks, BAI/CRAI/FAI
  indexes, counts, etags) with pysam/htslib; ``contigs``: a reference's contigs and whether a
  header's @SQ lines are among them.
- ``jobs``: background workers (upload processing, import/export/activation jobs).
- ``faults``: reproducible fault injection; ``streaming``: file ranges as response bodies, with
  the body faults; ``app``: the ASGI app (bounded bodies); ``connection``: the HTTP protocol
  (bounded request heads, closing a connection on purpose); ``server``: process lifecycle (both
  endpoints).
- ``s3/``: the stores' S3 access subset (path-style REST-XML) on the second endpoint.
"""
