"""Use cases. Each is one database transaction through a unit of work; each takes and returns plain values."""
