"""One module per resource family; each function implements one modeled operation.

Importing this package registers every operation in ``context.OPERATIONS``.
"""

from omicsfs.localservice.operations import (  # noqa: F401  (imported for registration)
    access,
    jobs,
    read_sets,
    references,
    stores,
    uploads,
)
