"""PostgreSQL through SQLAlchemy 2: tables, engine, unit of work and repositories."""
