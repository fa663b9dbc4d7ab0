"""Several models behind one endpoint: the catalog's models loaded on demand, routed by
the request's `model`, and evicted when idle or when memory runs short."""
