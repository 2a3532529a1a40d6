"""The S3 access subset of the sequence stores (what ``s3Access.s3Uri`` points at), path-style.

- ``routes``: which S3 operation a request is; ``app``: the ASGI handler of the S3 endpoint.
- ``objects``: buckets (access point aliases) and objects (files of ACTIVE read sets).
- ``policy``: the store's S3 access policy, in a documented subset of IAM's evaluation.
- ``conditional``: Range and If-* headers; ``listing``: ListObjects(V2) paging.
- ``documents``: the XML answers; ``errors``: S3's error codes and statuses.
"""
