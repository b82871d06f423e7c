"""Everything about operating PostgreSQL, in one place (the management commands that use it
stay thin wrappers):

- `localdb`: the project-local development cluster (`python -m hosting.database.localdb`);
- `programs`: where PostgreSQL's programs are (initdb, pg_ctl, pg_dump, pg_restore, psql);
- `pg`: running the libpq client programs against the databases Django knows about,
  the one-line description of a database, and `PgError`;
- `archive`: verifying a pg_dump archive;
- `backup`, `restore`, `check`: what `manage.py backup`, `restore` and `check_db` do.

`localdb` and `programs` use only the standard library: they run before Django is
configured. So this file imports nothing.
"""
