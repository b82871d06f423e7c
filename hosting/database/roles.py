"""The two database roles the app runs as (`manage.py db_roles`).

- The **owner** role owns every table, sequence, routine and type of the public schema
  and runs `migrate`: CONNECT on the database, USAGE and CREATE on the schema.
- The **app** role is what the web and worker processes log in as: SELECT, INSERT,
  UPDATE, DELETE on the tables; USAGE, SELECT on the sequences; EXECUTE on the routines
  (procrastinate's queue is SQL functions the worker calls); USAGE on the types; CONNECT
  on the database and USAGE on the schema; nothing else. It owns nothing, so it cannot
  ALTER, DROP or TRUNCATE a table, and it cannot CREATE in the schema. The owner's
  default privileges in public give it the same on whatever later migrations make.

Both are LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS.

`roles_ensure` is idempotent: each step reads the catalogs and changes only what
differs, all in one transaction, and reports what it changed. Run it as a superuser.
Roles and objects are named with psycopg.sql.Identifier; a password reaches the server
already hashed (libpq's PQencryptPasswordConn), so its plain text is never in a
statement or the server's log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from psycopg import sql

from hosting.database import pg
from hosting.database.pg import PgError, one_line

DEFAULT_OWNER = "hosting_owner"
DEFAULT_APP = "hosting_app"
SCHEMA = "public"
# PostgreSQL truncates longer names (NAMEDATALEN - 1 bytes) without a word.
MAX_NAME_BYTES = 63
LOCK_ID = 0x686F7374_726F6C65  # "hostrole": one db_roles at a time per cluster

# pg_authid column -> (wanted value, the keyword that sets it)
ROLE_ATTRIBUTES = {
    "rolcanlogin": (True, "LOGIN"),
    "rolsuper": (False, "NOSUPERUSER"),
    "rolcreatedb": (False, "NOCREATEDB"),
    "rolcreaterole": (False, "NOCREATEROLE"),
    "rolreplication": (False, "NOREPLICATION"),
    "rolbypassrls": (False, "NOBYPASSRLS"),
}

# What the app role holds, by pg_class.relkind (relations) or object class.
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")
RELATION_PRIVILEGES = {
    "r": TABLE_PRIVILEGES,
    "p": TABLE_PRIVILEGES,
    "v": TABLE_PRIVILEGES,
    "f": TABLE_PRIVILEGES,
    "m": ("SELECT",),
    "S": SEQUENCE_PRIVILEGES,
}
# pg_default_acl.defaclobjtype -> (keyword in ALTER DEFAULT PRIVILEGES, privileges)
DEFAULT_PRIVILEGES = {
    "r": ("TABLES", TABLE_PRIVILEGES),
    "S": ("SEQUENCES", SEQUENCE_PRIVILEGES),
    "f": ("FUNCTIONS", ("EXECUTE",)),
    "T": ("TYPES", ("USAGE",)),
}
# The privilege keywords aclexplode() returns: only these are ever put into a statement.
KNOWN_PRIVILEGES = frozenset(
    {
        *("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
        *("MAINTAIN", "USAGE", "EXECUTE", "CREATE", "CONNECT", "TEMPORARY"),
    }
)

PAST = {"GRANT": "granted", "REVOKE": "revoked"}

RELATION_KEYWORDS = {
    "r": ("TABLE", "table"),
    "p": ("TABLE", "table"),
    "v": ("VIEW", "view"),
    "m": ("MATERIALIZED VIEW", "materialized view"),
    "f": ("FOREIGN TABLE", "foreign table"),
    "S": ("SEQUENCE", "sequence"),
}

# The queries below leave out what belongs to an extension (its script manages it).
# Relations of the schema with their owner and the privileges `grantee` holds on them
# by name. Sequences linked to a column (serial, identity) change owner with their table.
RELATIONS = """
SELECT c.relkind, c.relname, c.relowner,
       ARRAY(SELECT a.privilege_type FROM aclexplode(c.relacl) a
             WHERE a.grantee = %(grantee)s::oid),
       c.relkind = 'S' AND EXISTS (
           SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
           AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
           AND d.deptype IN ('a', 'i'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                  AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY c.relkind = 'S', c.relname
"""

# Routines with their identity arguments as (schema, type name) pairs.
ROUTINES = """
SELECT p.proname, p.proowner,
       ARRAY(SELECT tn.nspname FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)
             JOIN pg_type ty ON ty.oid = a.t JOIN pg_namespace tn ON tn.oid = ty.typnamespace
             ORDER BY a.i),
       ARRAY(SELECT ty.typname FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)
             JOIN pg_type ty ON ty.oid = a.t ORDER BY a.i),
       ARRAY(SELECT a.privilege_type FROM aclexplode(p.proacl) a
             WHERE a.grantee = %(grantee)s::oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                  AND e.objid = p.oid AND e.deptype = 'e')
ORDER BY p.proname, p.oid
"""

# Types made on their own: enums, domains, ranges, base and standalone composite types;
# not a table's row type nor an array type, which follow their table or element type.
TYPES = """
SELECT t.typtype, t.typname, t.typowner,
       ARRAY(SELECT a.privilege_type FROM aclexplode(t.typacl) a
             WHERE a.grantee = %(grantee)s::oid)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                  AND e.objid = t.oid AND e.deptype = 'e')
ORDER BY t.typname
"""

DATABASE_PRIVILEGES = """
SELECT ARRAY(SELECT a.privilege_type
             FROM aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
             WHERE a.grantee = %(grantee)s::oid)
FROM pg_database d WHERE d.datname = current_database()
"""

SCHEMA_PRIVILEGES = """
SELECT ARRAY(SELECT a.privilege_type
             FROM aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE a.grantee = %(grantee)s::oid)
FROM pg_namespace n WHERE n.nspname = %(schema)s
"""

DEFAULT_ACL = """
SELECT d.defaclobjtype,
       ARRAY(SELECT a.privilege_type FROM aclexplode(d.defaclacl) a
             WHERE a.grantee = %(grantee)s::oid)
FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
WHERE d.defaclrole = %(owner)s::oid AND n.nspname = %(schema)s
"""


@dataclass
class RoleReport:
    """What `roles_ensure` did to one role. `password` is set only when this run set
    it (a new role, --reset-passwords, or a given password that differed)."""

    name: str
    created: bool = False
    password: str | None = None
    changes: list[str] = field(default_factory=list)


@dataclass
class RolesReport:
    database: str
    owner: RoleReport
    app: RoleReport

    @property
    def changed(self) -> bool:
        return bool(self.owner.changes or self.app.changes)


def password_generate() -> str:
    """43 URL-safe characters (256 random bits): fits a DATABASE_URL unquoted."""
    return secrets.token_urlsafe(32)


def password_matches(verifier: str | None, role: str, password: str) -> bool:
    """Whether `password` is the one behind pg_authid.rolpassword `verifier`
    (SCRAM-SHA-256 or md5), so a given password that is already set is not set again."""
    if not verifier:
        return False
    if verifier.startswith("md5"):
        digest = hashlib.md5((password + role).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(verifier, "md5" + digest)
    try:
        scheme, iterations_salt, keys = verifier.split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key, _server_key = keys.split(":")
    except ValueError:
        return False
    if scheme != "SCRAM-SHA-256":
        return False
    # PostgreSQL SASLprep-normalises the password (NFKC for our purposes).
    salted = hashlib.pbkdf2_hmac(
        "sha256",
        unicodedata.normalize("NFKC", password).encode(),
        base64.b64decode(salt),
        int(iterations),
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


def names_check(owner: str, app: str) -> None:
    """Refuse role names PostgreSQL would reserve, truncate, or that would make one role
    both owner and app. Raises PgError."""
    for option, name in (("--owner", owner), ("--app", app)):
        if not name:
            raise PgError(f"{option}: a role name is needed")
        if name.startswith("pg_"):
            raise PgError(f"{option}: role names starting with pg_ are reserved")
        if len(name.encode()) > MAX_NAME_BYTES:
            raise PgError(f"{option}: role names are at most {MAX_NAME_BYTES} bytes")
    if owner == app:
        raise PgError("--owner and --app must be two different roles")


def roles_ensure(
    connection,
    *,
    owner: str = DEFAULT_OWNER,
    app: str = DEFAULT_APP,
    owner_password: str | None = None,
    app_password: str | None = None,
    reset_passwords: bool = False,
) -> RolesReport:
    """Create or bring up to date the owner and app roles of the database behind the
    Django `connection` (which must be a superuser's), in one transaction. A password is
    generated for a role that is created, or for both with `reset_passwords`, unless one
    is given. Raises PgError with a one-line reason."""
    names_check(owner, app)
    try:
        connection.ensure_connection()
        conn = connection.connection
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
            cursor.execute(
                "SELECT current_database(), current_user, rolsuper FROM pg_roles "
                "WHERE rolname = current_user"
            )
            database, current, superuser = cursor.fetchone()
            if not superuser:
                raise PgError(
                    f"db_roles needs a superuser connection; {current} is not one "
                    "(set DATABASE_URL to a superuser's URL for this command)"
                )
            for name in (owner, app):
                if name == current:
                    raise PgError(f"{name} is the user this command connects as")
            owner_report = owner_ensure(
                cursor, owner, password=owner_password, reset=reset_passwords
            )
            app_report = app_ensure(
                cursor, app, owner=owner, password=app_password, reset=reset_passwords
            )
    except PgError:
        raise
    except Exception as exc:
        raise PgError(f"db_roles failed, nothing was changed: {one_line(exc)}") from exc
    return RolesReport(database=database, owner=owner_report, app=app_report)


def role_ensure(cursor, name: str, *, password: str | None, reset: bool) -> tuple[RoleReport, int]:
    """Create the login role `name`, or give an existing one the attributes of
    ROLE_ATTRIBUTES and (when asked, or when a given password differs) a new password.
    Returns its report and oid. Refuses a superuser: this would demote it."""
    report = RoleReport(name)
    cursor.execute("SELECT * FROM pg_authid WHERE rolname = %s", [name])
    row = cursor.fetchone()
    if row is None:
        report.password = password or password_generate()
        keywords = [keyword for _value, keyword in ROLE_ATTRIBUTES.values()]
        cursor.execute(
            sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(name),
                sql.SQL(" ").join(sql.SQL(keyword) for keyword in keywords),
                sql.Literal(_password_hash(cursor, name, report.password)),
            )
        )
        report.created = True
        report.changes.append(f"created ({' '.join(keywords)}), password set")
        cursor.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [name])
        return report, cursor.fetchone()[0]

    role = dict(zip((column.name for column in cursor.description), row, strict=True))
    if role["rolsuper"]:
        raise PgError(f"role {name} is a superuser; choose another name (nothing was changed)")
    wrong = [
        keyword for column, (wanted, keyword) in ROLE_ATTRIBUTES.items() if role[column] != wanted
    ]
    if wrong:
        cursor.execute(
            sql.SQL("ALTER ROLE {} {}").format(
                sql.Identifier(name), sql.SQL(" ").join(sql.SQL(keyword) for keyword in wrong)
            )
        )
        report.changes.append(f"set {' '.join(wrong)}")
    if reset or (
        password is not None and not password_matches(role["rolpassword"], name, password)
    ):
        report.password = password or password_generate()
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(name),
                sql.Literal(_password_hash(cursor, name, report.password)),
            )
        )
        report.changes.append("password set")
    return report, role["oid"]


def _password_hash(cursor, role: str, password: str) -> str:
    """The verifier the server would store for `password`, made here (the server's
    password_encryption: scram-sha-256 or md5)."""
    cursor.execute("SHOW password_encryption")
    (algorithm,) = cursor.fetchone()
    pgconn = cursor.connection.pgconn
    return pgconn.encrypt_password(password.encode(), role.encode(), algorithm.encode()).decode()


def owner_ensure(cursor, owner: str, *, password: str | None, reset: bool) -> RoleReport:
    """The owner role: CONNECT, USAGE and CREATE on the schema, and ownership of every
    object of the schema (that is not an extension's)."""
    report, oid = role_ensure(cursor, owner, password=password, reset=reset)
    params = {"grantee": oid, "schema": SCHEMA}
    _database_grant(cursor, report, oid, ("CONNECT",))
    cursor.execute(SCHEMA_PRIVILEGES, params)
    held = cursor.fetchone()[0]
    missing = [p for p in ("USAGE", "CREATE") if p not in held]
    if missing:
        cursor.execute(
            sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
                _keywords(missing), sql.Identifier(SCHEMA), sql.Identifier(owner)
            )
        )
        report.changes.append(f"granted {', '.join(missing)} on schema {SCHEMA}")

    taken: dict[str, int] = {}
    cursor.execute(RELATIONS, params)
    for kind, name, current_owner, _held, linked in cursor.fetchall():
        if current_owner == oid or linked:
            continue
        keyword, label = RELATION_KEYWORDS[kind]
        cursor.execute(
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(keyword), sql.Identifier(SCHEMA, name), sql.Identifier(owner)
            )
        )
        taken[label] = taken.get(label, 0) + 1
    cursor.execute(ROUTINES, params)
    for name, current_owner, arg_schemas, arg_types, _held in cursor.fetchall():
        if current_owner != oid:
            cursor.execute(
                sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(
                    _routine(name, arg_schemas, arg_types), sql.Identifier(owner)
                )
            )
            taken["routine"] = taken.get("routine", 0) + 1
    cursor.execute(TYPES, params)
    for kind, name, current_owner, _held in cursor.fetchall():
        if current_owner != oid:
            cursor.execute(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL("DOMAIN" if kind == "d" else "TYPE"),
                    sql.Identifier(SCHEMA, name),
                    sql.Identifier(owner),
                )
            )
            taken["type"] = taken.get("type", 0) + 1
    if taken:
        counts = ", ".join(f"{n} {label}{'s' if n != 1 else ''}" for label, n in taken.items())
        report.changes.append(f"took ownership of {counts} in schema {SCHEMA}")
    return report


def app_ensure(cursor, app: str, *, owner: str, password: str | None, reset: bool) -> RoleReport:
    """The app role: CONNECT, USAGE on the schema, the data privileges on every object
    of the schema and, through the owner's default privileges, on every object the owner
    makes there later; nothing more, and it owns nothing."""
    report, oid = role_ensure(cursor, app, password=password, reset=reset)
    cursor.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [owner])
    (owner_oid,) = cursor.fetchone()
    _app_owns_nothing(cursor, report, oid, owner, owner_oid)
    _database_grant(cursor, report, oid, ("CONNECT",), revoke=("CREATE",))
    _app_schema(cursor, report, oid)
    _app_objects(cursor, report, oid)
    _app_default_privileges(cursor, report, oid, owner, owner_oid)
    return report


def _app_owns_nothing(cursor, report, oid, owner, owner_oid) -> None:
    """Whatever the app role owns in this database (or a database it owns) goes to the
    owner, and it is no member of the owner role."""
    app = sql.Identifier(report.name)
    cursor.execute(
        "SELECT count(*) FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass "
        "AND refobjid = %s::oid AND deptype = 'o' AND dbid IN "
        "(0, (SELECT oid FROM pg_database WHERE datname = current_database()))",
        [oid],
    )
    if cursor.fetchone()[0]:
        cursor.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(app, sql.Identifier(owner)))
        report.changes.append(f"gave what it owned to {owner}")
    cursor.execute(
        "SELECT EXISTS (SELECT FROM pg_auth_members WHERE roleid = %s::oid AND member = %s::oid)",
        [owner_oid, oid],
    )
    if cursor.fetchone()[0]:
        cursor.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(owner), app))
        report.changes.append(f"removed from role {owner}")


def _app_schema(cursor, report, oid) -> None:
    """USAGE on the schema and no CREATE, neither its own nor through PUBLIC (which every
    role had in public before PostgreSQL 15)."""
    schema = sql.Identifier(SCHEMA)
    cursor.execute(SCHEMA_PRIVILEGES, {"grantee": oid, "schema": SCHEMA})
    missing, extra = _difference(cursor.fetchone()[0], ("USAGE",))
    statements = [
        ("GRANT {} ON SCHEMA {} TO {}", missing, f"granted {{}} on schema {SCHEMA}"),
        ("REVOKE {} ON SCHEMA {} FROM {}", extra, f"revoked {{}} on schema {SCHEMA}"),
    ]
    for statement, privileges, change in statements:
        if privileges:
            cursor.execute(
                sql.SQL(statement).format(
                    _keywords(privileges), schema, sql.Identifier(report.name)
                )
            )
            report.changes.append(change.format(", ".join(privileges)))
    cursor.execute(SCHEMA_PRIVILEGES, {"grantee": 0, "schema": SCHEMA})
    if "CREATE" in cursor.fetchone()[0]:
        cursor.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
        report.changes.append(f"revoked CREATE on schema {SCHEMA} from PUBLIC")


def _app_objects(cursor, report, oid) -> None:
    """The data privileges, and only those, on every relation, routine and type of the
    schema."""
    params = {"grantee": oid, "schema": SCHEMA}
    objects = []  # (keyword, label, name, held, wanted)
    cursor.execute(RELATIONS, params)
    for kind, name, _owner, held, _linked in cursor.fetchall():
        keyword = "SEQUENCE" if kind == "S" else "TABLE"
        label = RELATION_KEYWORDS[kind][1]
        objects.append(
            (keyword, label, sql.Identifier(SCHEMA, name), held, RELATION_PRIVILEGES[kind])
        )
    cursor.execute(ROUTINES, params)
    for name, _owner, arg_schemas, arg_types, held in cursor.fetchall():
        routine = _routine(name, arg_schemas, arg_types)
        objects.append(("ROUTINE", "routine", routine, held, ("EXECUTE",)))
    cursor.execute(TYPES, params)
    for kind, name, _owner, held in cursor.fetchall():
        keyword = "DOMAIN" if kind == "d" else "TYPE"
        objects.append((keyword, "type", sql.Identifier(SCHEMA, name), held, ("USAGE",)))

    counts: dict[tuple[str, str, str], int] = {}  # (granted/revoked, privileges, label) -> n
    app = sql.Identifier(report.name)
    for keyword, label, name, held, wanted in objects:
        missing, extra = _difference(held, wanted)
        for verb, privileges, direction in (("GRANT", missing, "TO"), ("REVOKE", extra, "FROM")):
            if privileges:
                cursor.execute(
                    sql.SQL("{} {} ON {} {} {} {}").format(
                        sql.SQL(verb),
                        _keywords(privileges),
                        sql.SQL(keyword),
                        name,
                        sql.SQL(direction),
                        app,
                    )
                )
                shown = ", ".join(wanted if verb == "GRANT" else privileges)
                key = (PAST[verb], shown, label)
                counts[key] = counts.get(key, 0) + 1
    for (done, privileges, label), n in counts.items():
        report.changes.append(f"{done} {privileges} on {n} {label}{'s' if n != 1 else ''}")


def _app_default_privileges(cursor, report, oid, owner, owner_oid) -> None:
    """The owner's default privileges in the schema: what it makes later (migrate) the
    app role may use at once."""
    cursor.execute(DEFAULT_ACL, {"grantee": oid, "schema": SCHEMA, "owner": owner_oid})
    defaults = dict(cursor.fetchall())
    for objtype, (keyword, wanted) in DEFAULT_PRIVILEGES.items():
        missing, extra = _difference(defaults.get(objtype, []), wanted)
        for verb, privileges, direction in (("GRANT", missing, "TO"), ("REVOKE", extra, "FROM")):
            if not privileges:
                continue
            cursor.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} {} {} ON {} {} {}"
                ).format(
                    sql.Identifier(owner),
                    sql.Identifier(SCHEMA),
                    sql.SQL(verb),
                    _keywords(privileges),
                    sql.SQL(keyword),
                    sql.SQL(direction),
                    sql.Identifier(report.name),
                )
            )
            report.changes.append(
                f"default privileges of {owner}: {verb.lower()} {', '.join(privileges)} "
                f"on new {keyword.lower()}"
            )


def _difference(held, wanted) -> tuple[list[str], list[str]]:
    """The privileges of `wanted` not in `held`, and the (known) ones held but not
    wanted."""
    missing = [p for p in wanted if p not in held]
    extra = sorted(p for p in set(held) - set(wanted) if p in KNOWN_PRIVILEGES)
    return missing, extra


def _database_grant(cursor, report, oid, wanted, revoke=()) -> None:
    cursor.execute(DATABASE_PRIVILEGES, {"grantee": oid})
    held = cursor.fetchone()[0]
    role = sql.Identifier(report.name)
    missing = [p for p in wanted if p not in held]
    extra = [p for p in revoke if p in held]
    for verb, privileges, direction in (("GRANT", missing, "TO"), ("REVOKE", extra, "FROM")):
        if privileges:
            cursor.execute(
                sql.SQL("{} {} ON DATABASE {} {} {}").format(
                    sql.SQL(verb),
                    _keywords(privileges),
                    sql.Identifier(_current_database(cursor)),
                    sql.SQL(direction),
                    role,
                )
            )
            report.changes.append(f"{PAST[verb]} {', '.join(privileges)} on the database")


def _current_database(cursor) -> str:
    cursor.execute("SELECT current_database()")
    return cursor.fetchone()[0]


def _keywords(privileges) -> sql.Composable:
    unknown = [p for p in privileges if p not in KNOWN_PRIVILEGES]
    if unknown:
        raise PgError(f"unexpected privilege {unknown[0]!r}")
    return sql.SQL(", ").join(sql.SQL(p) for p in privileges)


def _routine(name, arg_schemas, arg_types) -> sql.Composable:
    """public.name(schema.type, ...): a routine's identity, every part an Identifier."""
    arguments = sql.SQL(", ").join(
        sql.Identifier(schema, type_name)
        for schema, type_name in zip(arg_schemas, arg_types, strict=True)
    )
    return sql.SQL("{}({})").format(sql.Identifier(SCHEMA, name), arguments)


def database_url(settings_dict: dict, user: str, password: str | None = None) -> str:
    """A DATABASE_URL for the database of `settings_dict` as `user`: its host (or Unix
    socket directory), port, name and libpq options such as sslmode, with `password`
    only when given."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    host = settings_dict.get("HOST") or ""
    name = quote(settings_dict.get("NAME") or "", safe="")
    if host.startswith("/"):
        # django-environ reads an absolute path right after "@/" as the socket directory.
        where = f"/{host}"
    else:
        where = f"[{host}]" if ":" in host else host
        if settings_dict.get("PORT"):
            where += f":{settings_dict['PORT']}"
    options = {
        key: value
        for key, value in (settings_dict.get("OPTIONS") or {}).items()
        if key in pg.LIBPQ_ENV_VARS
        and key not in ("host", "hostaddr", "port", "dbname", "user", "password")
        and isinstance(value, str | int)
    }
    query = f"?{urlencode(options)}" if options else ""
    return f"postgresql://{auth}@{where}/{name}{query}"


def report_lines(report: RolesReport, connection) -> list[str]:
    """The command's output: what changed for each role, then the two DATABASE_URLs of
    the database behind the Django `connection`, with a password only where this run set
    it."""
    settings_dict = connection.settings_dict
    lines = [f"Roles in {pg.describe(pg.params_env(connection.get_connection_params()))}"]
    for title, role in (("Owner", report.owner), ("App", report.app)):
        lines.append(f"{title} role {role.name}:")
        lines += [f"  {change}" for change in role.changes] or ["  no change"]
    lines.append("")
    for use, role in (
        ("migrate (owner)", report.owner),
        ("web and worker (app)", report.app),
    ):
        lines.append(f"DATABASE_URL for {use}:")
        lines.append(f"  {database_url(settings_dict, role.name, role.password)}")
    if report.owner.password or report.app.password:
        lines.append("Store the passwords now: they are not shown again.")
    unchanged = [r.name for r in (report.owner, report.app) if not r.password]
    if unchanged:
        lines.append(
            f"Password of {' and '.join(unchanged)} unchanged and not shown "
            "(--reset-passwords sets new ones)."
        )
    return lines
