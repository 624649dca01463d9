"""The workers' own PostgreSQL role: the columns a worker reads and writes, and nothing else.

A worker connects as `<database>_worker` (DATABASE_URL in SSM, written by `provision
--with-db-roles`), never as the web tier's owner role: it cannot read users, password hashes,
API tokens or sessions, and cannot delete or insert images. The grants name models and fields,
and their tables and columns come from the models' _meta, so a renamed field renames its
grant; a column a worker starts to need fails tests/deploy/test_database_roles.py, which runs a
real worker under the role. The web tier and the autoscaler keep the owner role (migrations,
the admin, the sweeper).
"""
import secrets
from urllib.parse import quote, unquote, urlencode, urlsplit

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from classifier.models import Image, Prediction
from imgsite.aws import client
from scaling.models import WorkerNode

EVERY_FIELD = None
# (model, privilege, fields): what a worker's queries touch, found by running one under the role.
WORKER_GRANTS = [
    # claim() returns whole rows, which the pipeline and finish() read.
    (Image, "SELECT", EVERY_FIELD),
    # claim, extend_lease, release and finish (with what the worker found reading an original:
    # found()); the outbox's take_for_message and unsend (dispatch()).
    (Image, "UPDATE", ["status", "started_at", "worker", "attempts", "lease_expires_at", "finished_at", "error",
                       "error_code", "model_name", "thumbnail", "content_type", "width", "height", "sha256",
                       "sent_at", "message"]),
    # finish()'s labels; bulk_create reads back the new ids.
    (Prediction, "INSERT", ["image", "rank", "class_index", "wnid", "label", "score", "parents", "search_text"]),
    (Prediction, "SELECT", ["id"]),
    # The heartbeat: report_started (update_or_create), heartbeat, report_stopped.
    (WorkerNode, "SELECT", EVERY_FIELD),
    (WorkerNode, "INSERT", ["name", "last_heartbeat", "started_at", "draining", "stopped_at"]),
    (WorkerNode, "UPDATE", ["last_heartbeat", "started_at", "draining", "stopped_at"]),
]


def require_postgresql():
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured(f"database roles need PostgreSQL: DATABASE_URL is {connection.vendor}")


def worker_role_name():
    """`<database name>_worker`: roles belong to the whole server, databases are unique on it."""
    return f"{connection.settings_dict['NAME']}_worker"[:63]


def worker_columns():
    """{(table, privilege): [column, ...]} that the worker role is granted."""
    wanted = {}
    for model, privilege, names in WORKER_GRANTS:
        fields = (model._meta.concrete_fields if names is EVERY_FIELD
                  else [model._meta.get_field(name) for name in names])
        wanted.setdefault((model._meta.db_table, privilege), []).extend(field.column for field in fields)
    return wanted


def grant_statement(role, table, privilege, columns):
    quote_name = connection.ops.quote_name
    return (f"GRANT {privilege} ({', '.join(quote_name(column) for column in columns)}) "
            f"ON {quote_name(table)} TO {quote_name(role)}")


def grant_statements(role):
    """The GRANT statements that give `role` exactly worker_columns(), in order."""
    return [grant_statement(role, table, privilege, columns)
            for (table, privilege), columns in sorted(worker_columns().items())]


def current_privileges(cursor, role):
    """{(table, privilege, column or None for the whole table)} that `role` holds in this database's schemas."""
    cursor.execute("""
        SELECT c.relname, acl.privilege_type, NULL FROM pg_class c
          CROSS JOIN LATERAL aclexplode(c.relacl) acl
         WHERE acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
           AND c.relnamespace = ANY (current_schemas(false)::regnamespace[])
        UNION
        SELECT c.relname, acl.privilege_type, a.attname FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          CROSS JOIN LATERAL aclexplode(a.attacl) acl
         WHERE acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
           AND c.relnamespace = ANY (current_schemas(false)::regnamespace[])""", [role, role])
    return set(cursor.fetchall())


def wanted_privileges():
    return {(table, privilege, column) for (table, privilege), columns in worker_columns().items()
            for column in columns}


def role_exists(cursor, role):
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def worker_database_url(role, password):
    """The owner's DATABASE_URL with the worker role's name and password instead."""
    database = connection.settings_dict
    options = {key: value for key, value in database.get("OPTIONS", {}).items() if isinstance(value, str)}
    url = (f"postgres://{quote(role, safe='')}:{quote(password, safe='')}@{database['HOST'] or '127.0.0.1'}:"
           f"{database['PORT'] or 5432}/{quote(database['NAME'], safe='')}")
    return f"{url}?{urlencode(options)}" if options else url


def parameter_name():
    return f"{settings.SSM_PARAMETER_PREFIX.rstrip('/')}/DATABASE_URL"


def stored_url_is_for(role):
    """Whether the workers' DATABASE_URL in SSM names `role` on this database, as worker_database_url does."""
    try:
        value = client("ssm").get_parameter(Name=parameter_name(), WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return False
        raise
    stored, wanted = urlsplit(value), urlsplit(worker_database_url(role, "-"))
    return (unquote(stored.username or ""), stored.hostname, stored.port, stored.path, stored.query) == (
        role, wanted.hostname, wanted.port, wanted.path, wanted.query)


def ensure_worker_database_role(dry_run=False):
    """Create the workers' role, give it exactly its grants (revoking any other), and put its
    DATABASE_URL in SSM when the parameter is missing or names another role; returns the changes
    (the SQL run, passwords left out)."""
    require_postgresql()
    role = worker_role_name()
    name = connection.ops.quote_name(role)
    changes = []
    with connection.cursor() as cursor:

        def run(sql, params=(), shown=None):
            changes.append(shown or sql)
            if not dry_run:
                cursor.execute(sql, params or None)

        exists = role_exists(cursor, role)
        if not exists:
            run(f"CREATE ROLE {name} LOGIN NOINHERIT", shown=f"CREATE ROLE {name} LOGIN NOINHERIT")
        if not stored_url_is_for(role):
            password = secrets.token_urlsafe(32)
            run(f"ALTER ROLE {name} PASSWORD %s", [password], shown=f"ALTER ROLE {name} PASSWORD '(new)'")
            changes.append(f"put the workers' DATABASE_URL (role {role}) in SSM {parameter_name()}")
            if not dry_run:
                client("ssm").put_parameter(Name=parameter_name(), Value=worker_database_url(role, password),
                                            Type="SecureString", Overwrite=True)
        current = current_privileges(cursor, role) if exists else set()
        wanted = wanted_privileges()
        # Anything else it holds (a table-wide grant, a column no longer needed) is revoked.
        for table, privilege, column in sorted(current - wanted, key=str):
            columns = f" ({connection.ops.quote_name(column)})" if column else ""
            run(f"REVOKE {privilege}{columns} ON {connection.ops.quote_name(table)} FROM {name}")
        for (table, privilege), columns in sorted(worker_columns().items()):
            if any((table, privilege, column) not in current for column in columns):
                run(grant_statement(role, table, privilege, columns))
    return changes


def drop_worker_database_role(dry_run=False):
    """Drop the workers' role (its grants in this database first) and the SSM parameter naming it."""
    require_postgresql()
    role = worker_role_name()
    name = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        if not role_exists(cursor, role):
            return []
        changes = [f"DROP OWNED BY {name}", f"DROP ROLE {name}"]
        if not dry_run:
            for sql in changes:
                cursor.execute(sql)
    if stored_url_is_for(role):
        changes.append(f"delete SSM parameter {parameter_name()}")
        if not dry_run:
            client("ssm").delete_parameter(Name=parameter_name())
    return changes
