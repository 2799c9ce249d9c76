"""Use cases: the only place that joins the core, the store and the adapters."""
