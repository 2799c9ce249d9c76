"""The database adapter: typed models, migrations and the unit of work."""
