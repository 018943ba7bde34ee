"""logfill indexer: settings, storage, chain access and the backfill worker."""
