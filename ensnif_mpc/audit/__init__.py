"""The append-only, hash-chained audit log shared by the coordinator and the nodes."""
