"""Every environment variable imgsite reads: what it means and which tier it concerns.

This list is the one source of docs/settings.md (`manage.py settings_reference --write`); the
defaults come from the code itself, read by parsing it. tests/imgsite/test_settings_reference.py
fails when the code reads a variable that is missing here, when an entry here is read nowhere,
and when docs/settings.md is stale. To add a setting: one line in its section below.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where the application reads its environment (tests and benchmarks are not deployments).
SOURCES = ("imgsite", "classifier", "scaling", "deploy", "worker_ami")
READERS = {"envstr", "envint", "envbool", "envfloat", "getenv"}
READER_DEFAULTS = {"envstr": "", "envbool": "False"}
PAGE = ROOT / "docs" / "settings.md"

WEB, WORKER, AUTOSCALER = "web", "worker", "autoscaler"
ALL = (WEB, WORKER, AUTOSCALER)
PROVISION = "provision"  # manage.py provision, on the operator's machine
LOCAL = "local"  # make run / manage.py runlocal

# {section: [(name, tiers, meaning, default shown instead of the code's, or None)]}
REFERENCE = {
    "Django, the database and the web tier": [
        ("DEBUG", ALL, "Development mode: verbose error pages, relaxed host and cookie checks. "
                       "Never on in production.", None),
        ("SECRET_KEY", ALL, "Django's signing key; required when DEBUG is off. Keep it in a secret store "
                            "(workers: SSM Parameter Store).", None),
        ("ALLOWED_HOSTS", (WEB,), "Comma-separated host names the site answers to.", None),
        ("CSRF_TRUSTED_ORIGINS", (WEB,), "Comma-separated origins trusted for CSRF, "
                                         "e.g. `https://imgsite.example.com`.", None),
        ("DATABASE_URL", ALL, "The database, e.g. `postgres://user:password@host:5432/imgsite`; "
                              "empty: SQLite in VAR_DIR.", None),
        ("VAR_DIR", ALL, "Local state: the SQLite database, logs of `make run`, built models.", None),
        ("REDIS_URL", ALL, "A Redis cache every process shares (rate limits, lockouts); empty: Django's database "
                           "cache (`manage.py createcachetable`).", None),
        ("NUM_PROXIES", (WEB,), "Proxies in front of the web tier whose X-Forwarded-For entry is trusted (1 behind "
                                "a load balancer); 0 trusts none.", None),
        ("DJANGO_SETTINGS_MODULE", ALL, "Django's settings module; the units and manage.py set it.", None),
        ("SECURE_PROXY_SSL_HEADER", (WEB,), "Behind a load balancer that terminates TLS: "
                                            "`HTTP_X_FORWARDED_PROTO,https`.", None),
        ("SECURE_SSL_REDIRECT", (WEB,), "With DEBUG off, redirect plain HTTP to HTTPS.", None),
        ("SECURE_HSTS_SECONDS", (WEB,), "With DEBUG off, the HSTS max-age in seconds.", None),
        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", (WEB,), "With DEBUG off, HSTS covers subdomains.", None),
        ("SECURE_HSTS_PRELOAD", (WEB,), "With DEBUG off, ask browsers to preload HSTS.", None),
        ("GUNICORN_BIND", (WEB,), "Where gunicorn listens (imgsite/gunicorn.conf.py).", None),
        ("WEB_CONCURRENCY", (WEB,), "gunicorn worker processes.", "cores + 1"),
        ("GUNICORN_THREADS", (WEB,), "Threads per gunicorn process (uploads wait on S3, not the CPU).", None),
        ("GUNICORN_TIMEOUT", (WEB,), "Seconds before gunicorn restarts a silent process; above the longest "
                                     "upload.", None),
        ("FORWARDED_ALLOW_IPS", (WEB,), "Proxies whose X-Forwarded-* headers gunicorn believes: the load "
                                        "balancer's addresses, or `*` inside a private subnet.", None),
        ("PORT", (LOCAL,), "The port `make run` serves on.", None),
    ],
    "AWS: the bucket and the queues": [
        ("AWS_REGION", ALL + (PROVISION,), "The AWS region of every resource.", None),
        ("AWS_ENDPOINT_URL", ALL + (PROVISION,), "Empty for real AWS; `http://127.0.0.1:5000` for the local moto "
                                                 "server.", None),
        ("AWS_ACCESS_KEY_ID", (WEB, WORKER, LOCAL), "With AWS_ENDPOINT_URL only: the key put into the broker URL "
                                                    "for moto. On AWS, use roles.", None),
        ("AWS_SECRET_ACCESS_KEY", (WEB, WORKER, LOCAL), "With AWS_ENDPOINT_URL only, as AWS_ACCESS_KEY_ID.", None),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", (WORKER,), "The instance metadata service worker_env.py asks for the "
                                                          "instance id (tests point it elsewhere).", None),
        ("IMAGE_BUCKET", ALL + (PROVISION,), "The private S3 bucket of originals and thumbnails.", None),
        ("PRESIGNED_URL_EXPIRY", (WEB,), "Seconds a presigned image URL stays valid.", None),
        ("PRESIGNED_UPLOAD_EXPIRY", (WEB,), "Seconds a presigned upload straight to S3 may start after it is "
                                            "issued; its commit is accepted for twice this.", None),
        ("UPLOAD_ORIGINS", (PROVISION,), "Comma-separated origins of the site's pages, allowed by the bucket's CORS "
                                         "rule to upload straight to it (at most one `*` each).",
         "CSRF_TRUSTED_ORIGINS, else `https://` + each ALLOWED_HOSTS name; with DEBUG, `http://127.0.0.1:*` and "
         "`http://localhost:*`"),
        ("CLASSIFY_QUEUE", ALL + (PROVISION,), "The SQS queue of classification tasks.", None),
        ("CLASSIFY_QUEUE_URL", ALL, "The queue's URL: no sqs:ListQueues or GetQueueUrl needed. Required with "
                                    "the provisioned roles, which grant neither.", None),
        ("DEAD_LETTER_QUEUE", (AUTOSCALER, PROVISION), "Where SQS moves a message that failed MAX_RECEIVE_COUNT "
                                                       "times; the sweeper empties it.", None),
        ("MAX_RECEIVE_COUNT", (WORKER, AUTOSCALER, PROVISION), "Deliveries of one message before it is "
                                                               "dead-lettered; claims of one image before it "
                                                               "fails.", None),
        ("SQS_VISIBILITY_TIMEOUT", (WORKER, AUTOSCALER, PROVISION), "Seconds a received message stays hidden "
                                                                     "unless its worker extends it (every third of "
                                                                     "this): how soon a dead worker's images are "
                                                                     "taken over.", None),
        ("TASK_SOFT_TIME_LIMIT", (WORKER,), "Seconds after which a group fails its remaining images as "
                                            "timed out.", None),
        ("TASK_TIME_LIMIT", (WORKER, AUTOSCALER), "Seconds after which a stuck task is killed (prefork) and "
                                                  "its message is no longer extended.", None),
        ("SQS_WAIT_TIME_SECONDS", (WORKER,), "Long-polling wait of the workers' receives.", None),
        ("CELERY_BROKER_URL", ALL, "An `sqs://` URL; empty: derived from AWS_ENDPOINT_URL and the AWS "
                                   "credentials.", None),
        ("RESEND_AFTER_SECONDS", (AUTOSCALER,), "A sent image unclaimed this long (or whose claim lapsed this "
                                                "long ago) has lost its message: the sweeper sends it again.", None),
        ("SSM_PARAMETER_PREFIX", (WORKER, PROVISION), "SSM Parameter Store path under which workers read "
                                                      "DATABASE_URL and SENTRY_DSN, and nothing else.", None),
    ],
    "Uploads and the API": [
        ("MAX_UPLOAD_BYTES", (WEB, WORKER), "Largest image file accepted.", None),
        ("MAX_IMAGE_PIXELS", (WEB, WORKER), "Largest image (width × height, from its header) accepted.", None),
        ("MAX_FILES_PER_REQUEST", (WEB,), "Most files in one upload request.", None),
        ("MAX_REQUEST_BYTES", (WEB,), "Largest request body; larger is refused with 413 unread.", None),
        ("UPLOAD_STORE_THREADS", (WEB,), "Files of one request streamed to S3 at once.", None),
        ("UPLOAD_REQUEST_FILES", (WEB,), "Files the gallery sends per request.", None),
        ("UPLOAD_REQUEST_BYTES", (WEB,), "About how many bytes the gallery sends per request.", None),
        ("MAX_ARCHIVE_BYTES", (WEB,), "Largest .zip accepted.", None),
        ("MAX_ARCHIVE_MEMBERS", (WEB,), "Most members of one .zip.", None),
        ("MAX_ARCHIVE_UNCOMPRESSED_BYTES", (WEB,), "Most bytes one .zip may expand to.", None),
        ("MAX_ARCHIVE_RATIO", (WEB,), "Highest compression ratio of a .zip member (zip bombs).", None),
        ("IMAGES_PER_MESSAGE", ALL, "Images per SQS message: fewer, larger messages.", None),
        ("DISPATCH_WAITING_PER_USER", ALL, "Fair share: messages each user may have waiting in SQS; the rest "
                                           "of their images wait in the outbox.", None),
        ("API_RATE_LIMIT", (WEB,), "Requests per user, e.g. `300/min`.", None),
        ("MAX_BATCH_IMAGES", (WEB,), "Images one batch may hold; uploads past it are refused (413).", None),
        ("BATCH_PAGE_SIZE", (WEB,), "Cards per page of a batch in the gallery.", None),
        ("LOW_CONFIDENCE_BELOW", (WEB,), "A label scored below this is marked unsure in the pages, the API and the "
                                         "exports.", None),
    ],
    "The classifier and the workers": [
        ("CLASSIFIER_MODEL", (WORKER,), "`efficientnet_lite0` or `resnet50`.", None),
        ("CLASSIFIER_RUNTIME", (WORKER,), "`litert`, `litert-int8` (the int8 model) or `keras` (ResNet50: keras only).",
         "`litert` (`keras` for resnet50)"),
        ("CLASSIFIER_TOP_K", (WORKER,), "Labels kept per image.", None),
        ("CLASSIFIER_THREADS", (WORKER,), "Inference threads per worker process; 0: one per core.", None),
        ("MODEL_DIR", (WORKER,), "Where `manage.py build_model` writes, and workers read, the model.", None),
        ("RESNET50_WEIGHTS", (WORKER,), "The ResNet50 weights file (never downloaded).", None),
        ("WORKER_CONCURRENCY", (WORKER,), "Tasks a worker node runs at once (its Celery concurrency).",
         "the core count"),
        ("WORKER_IO_THREADS", (WORKER,), "Threads per worker process for S3 reads and thumbnail writes (decoding "
         "has one a core).", None),
        ("WORKER_NODE", (WORKER,), "The node's id (the EC2 instance id, or local-N); set by the fleet.",
         "the host name"),
        ("WORKER_HEARTBEAT_SECONDS", (WORKER,), "Seconds between a worker's heartbeats.", None),
        ("WORKER_STALE_SECONDS", (WEB, AUTOSCALER), "A node silent this long counts as gone.", None),
    ],
    "The autoscaler and its fleet": [
        ("AUTOSCALE_BACKEND", (AUTOSCALER,), "`local` (processes), `ec2` (instances) or `asg` (an Auto Scaling "
                                             "group).", None),
        ("AUTOSCALE_MIN_NODES", (AUTOSCALER, PROVISION), "Fewest nodes (the group's MinSize).", None),
        ("AUTOSCALE_MAX_NODES", (AUTOSCALER, PROVISION), "Most nodes (the group's MaxSize).", None),
        ("AUTOSCALE_INTERVAL", (AUTOSCALER,), "Seconds between passes while nothing moves.", None),
        ("AUTOSCALE_BUSY_INTERVAL", (AUTOSCALER,), "Seconds between passes while nodes boot, work or drain.", None),
        ("AUTOSCALE_BOOT_SECONDS", (AUTOSCALER,), "Seconds from launch to a worker taking messages, until "
                                                  "measured.", None),
        ("AUTOSCALE_ACCEPTABLE_LATENCY", (AUTOSCALER,), "Extra wait a message may have beyond what a node launched "
                                                        "now could give it, before one is.", None),
        ("AUTOSCALE_SECONDS_PER_IMAGE", (AUTOSCALER,), "Seconds per image until measured.", None),
        ("AUTOSCALE_MAX_STEP", (AUTOSCALER,), "Most nodes launched in one pass.", None),
        ("AUTOSCALE_MAX_RETIRE_STEP", (AUTOSCALER,), "Most nodes retired in one pass.", None),
        ("AUTOSCALE_SURGE", (AUTOSCALER,), "Booting + running + draining nodes may exceed the max by this many.",
         None),
        ("AUTOSCALE_RATE_WINDOW", (AUTOSCALER,), "Seconds of recent uploads behind the Little's-law floor.", None),
        ("AUTOSCALE_IDLE_HOLD_SECONDS", (AUTOSCALER,), "How long one warm node stays after the work; empty: "
                                                       "derived from the boot time and interval.", None),
        ("AUTOSCALE_RECURRENCE_SECONDS", (AUTOSCALER,), "Uploads this close together count as a recurring "
                                                        "load; empty: derived from the boot time.", None),
        ("AUTOSCALE_LEASE_SECONDS", (AUTOSCALER,), "How long one autoscaler holds the lease that keeps a second "
                                                   "copy waiting; renewed every pass.", None),
        ("AUTOSCALE_DRAIN_TIMEOUT", (AUTOSCALER,), "A draining node still busy after this is stopped anyway.",
         None),
        ("FLEET_NAME", (AUTOSCALER, PROVISION), "Names the workers' instances, role and launch template, and "
                                                "the roles FLEET_NAME-web and FLEET_NAME-autoscaler.", None),
        ("ASG_NAME", (AUTOSCALER, PROVISION), "The Auto Scaling group (asg backend).", None),
        ("EC2_LAUNCH_TEMPLATE", (AUTOSCALER, PROVISION), "The launch template the ec2 backend launches from (it "
         "must be set there); `provision --with-launch-template` makes it, named FLEET_NAME if unset.", None),
        ("EC2_AMI_ID", (PROVISION,), "The worker image; empty: the newest imgsite-worker-* image.",
         None),
        ("EC2_INSTANCE_TYPE", (AUTOSCALER, PROVISION), "The workers' instance type.", None),
        ("EC2_INSTANCE_PROFILE", (PROVISION,), "The workers' instance profile; default FLEET_NAME.",
         None),
        ("EC2_SUBNET_ID", (PROVISION,), "Comma-separated subnets the workers run in.", None),
        ("EC2_SECURITY_GROUP_IDS", (PROVISION,), "Comma-separated security groups of the workers.",
         None),
        ("EC2_USER_DATA_FILE", (PROVISION,), "A user-data template instead of "
                                                        "worker_ami/user-data.yaml.tmpl.", None),
    ],
    "Operations: logs, errors, metrics, health": [
        ("LOG_LEVEL", ALL, "DEBUG, INFO, WARNING, ERROR or CRITICAL.", None),
        ("LOG_FORMAT", ALL, "`plain` text lines, or `json`: one JSON object per line.", None),
        ("JOURNAL_STREAM", ALL, "Set by systemd when output goes to the journal: plain lines then drop the "
                                "timestamp and carry a priority. Not set by hand.", None),
        ("SENTRY_DSN", ALL, "Report errors to Sentry (off, and sentry_sdk not imported, when empty); workers "
                            "read it from SSM Parameter Store.", None),
        ("SENTRY_ENVIRONMENT", ALL, "The Sentry environment name of this deployment.", None),
        ("SENTRY_TRACES_SAMPLE_RATE", ALL, "Share of requests and tasks traced in Sentry, 0 to 1.", None),
        ("METRICS_TOKEN", (WEB,), "Bearer token for /metrics and /healthz/deep (20+ characters).", None),
        ("METRICS_ALLOWED_IPS", (WEB,), "Comma-separated networks allowed /metrics and /healthz/deep without "
                                        "the token, when not through a proxy.", "empty"),
        ("METRICS_WINDOW_SECONDS", (WEB,), "The window of /metrics' rates and latency histograms.", None),
        ("HEALTH_CACHE_SECONDS", (WEB,), "How long /healthz/deep keeps its answer, per process.", None),
        ("AUTOSCALE_CLOUDWATCH_METRIC", (AUTOSCALER,), "asg backend: publish BacklogPerInstance to CloudWatch "
                                                       "after each pass, for target tracking.", None),
        ("CLOUDWATCH_NAMESPACE", (AUTOSCALER,), "The CloudWatch namespace of that metric.", None),
    ],
    "Accounts: tokens, logins, mail": [
        ("API_TOKEN_DAYS", (WEB,), "Days a new API token lives (django-rest-knox; stored hashed).", None),
        ("API_TOKEN_MAX_DAYS", (WEB,), "The longest lifetime a token may be given.", None),
        ("API_TOKENS_PER_USER", (WEB,), "Tokens one user may hold at once.", None),
        ("LOGIN_FAILURE_LIMIT", (WEB,), "Wrong passwords for one username from one address before that pair is "
                                        "locked out (django-axes).", None),
        ("LOGIN_LOCKOUT_MINUTES", (WEB,), "How long such a lockout lasts.", None),
        ("EMAIL_HOST", (WEB,), "The SMTP server; empty: no mail, and no password reset.", None),
        ("EMAIL_PORT", (WEB,), "The SMTP port.", None),
        ("EMAIL_HOST_USER", (WEB,), "The SMTP user.", None),
        ("EMAIL_HOST_PASSWORD", (WEB,), "The SMTP password (a secret).", None),
        ("EMAIL_USE_TLS", (WEB,), "STARTTLS to the SMTP server.", None),
        ("DEFAULT_FROM_EMAIL", (WEB,), "The sender of password-reset mail; required with EMAIL_HOST.", None),
        ("PASSWORD_RESET_RATE", (WEB,), "Reset mails a client or an address may ask for per hour.", None),
    ],
    "Bounded work: per file, per request, per user, per worker": [
        ("MAX_PIXELS_PER_BYTE", ALL, "A picture over 4 MP with more pixels per byte of file than this is refused "
                                     "unread (0: off).", None),
        ("MAX_IMAGES_PER_REQUEST", (WEB,), "Images per request, archive members included.", None),
        ("MAX_REQUEST_EXPANDED_BYTES", (WEB,), "Bytes per request once archives are expanded.", None),
        ("QUOTA_OPEN_IMAGES", (WEB,), "Per user: images queued or processing at once (429 beyond).", None),
        ("QUOTA_IMAGES_PER_DAY", (WEB,), "Per user: images accepted in 24 hours (429 beyond).", None),
        ("QUOTA_BYTES_STORED", (WEB,), "Per user: bytes of originals stored (413 beyond).", None),
        ("UPLOAD_RATE_LIMIT", (WEB,), "Upload requests per user, the API and the form together, e.g. `60/min`.",
         None),
        ("DECODE_MEMORY_BUDGET", (WORKER,), "Bytes a worker process may spend on decodes at once; a decode waits "
                                            "for room.", None),
        ("DECODE_MAX_IMAGE_BYTES", (WORKER,), "Bytes one image may take to decode; a larger one fails with "
                                              "too_much_memory.", None),
        ("WORKER_MAX_MEMORY_PER_CHILD", (WORKER,), "A prefork pool process that ends a task above this is "
                                                   "replaced.", None),
    ],
    "Stored objects": [
        ("ORPHAN_GRACE_SECONDS", (AUTOSCALER,), "Objects without an image row are deleted once older than this.",
         None),
        ("ORPHAN_SWEEP_PAGES", (AUTOSCALER,), "Pages of 1,000 object names each sweep lists, resuming where the "
                                              "last one stopped.", None),
    ],
}


def reference():
    """{name: (section, tiers, meaning, default override)} in page order."""
    return {name: (section, tiers, meaning, default) for section, rows in REFERENCE.items()
            for name, tiers, meaning, default in rows}


def dotted(node):
    """'os.environ.get' for a call's function, or '' for anything fancier."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        outer = dotted(node.value)
        return f"{outer}.{node.attr}" if outer else ""
    return ""


def is_environ(node):
    return dotted(node) in ("environ", "os.environ")


def read_call(node, readers):
    """The function name if `node` reads the environment: envint(...), os.environ.get(...), os.getenv(...),
    or a call to one of `readers`."""
    if not isinstance(node, ast.Call):
        return ""
    name = dotted(node.func)
    if name.rpartition(".")[2] in readers:
        return name.rpartition(".")[2]
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "setdefault", "pop") \
            and is_environ(node.func.value):
        return "environ"
    return ""


def literal_name(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isupper():
        return node.value
    return None


def wrappers(tree):
    """Functions of this file that read the variable named by one of their parameters, e.g.
    `def networks(name): ... envstr(name)`: a call networks("X") reads X."""
    found = set()
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
        parameters = {argument.arg for argument in function.args.args}
        for node in ast.walk(function):
            if read_call(node, READERS) and node.args and isinstance(node.args[0], ast.Name) \
                    and node.args[0].id in parameters:
                found.add(function.name)
    return found


def reads_in(path):
    """[(name, default source or None)] for every literal environment read in one file."""
    text = path.read_text()
    tree = ast.parse(text, str(path))
    readers = READERS | wrappers(tree)
    found = []
    for node in ast.walk(tree):
        reader = read_call(node, readers)
        if reader and node.args and literal_name(node.args[0]):
            default = node.args[1] if len(node.args) > 1 else next(
                (keyword.value for keyword in node.keywords if keyword.arg == "default"), None)
            source = ast.get_source_segment(text, default) if default is not None else None
            if source is None and reader in READER_DEFAULTS:
                source = repr(READER_DEFAULTS[reader])
            found.append((node.args[0].value, source))
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and literal_name(node.slice):
            found.append((node.slice.value, None))
    return found


def environment_reads(root=ROOT):
    """{name: (default source or None, [files])}, the settings' defaults first."""
    settings_files = [path for path in [root / "imgsite" / "settings.py", *sorted((root / "imgsite" / "settings").glob(
        "*.py"))] if path.exists()]
    paths = settings_files + sorted(
        path for package in SOURCES for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts and path not in settings_files)
    found = {}
    for path in paths:
        for name, default in reads_in(path):
            known_default, files = found.get(name, (None, []))
            relative = str(path.relative_to(root))
            found[name] = (known_default if known_default is not None else default,
                           files if relative in files else [*files, relative])
    return found


def problems(root=ROOT):
    """What keeps this reference from being complete and exact, in sentences; [] when it is."""
    reads, listed = environment_reads(root), reference()
    found = [f"{name} is read in {', '.join(files)} but missing from imgsite/settings_reference.py: "
             f"add a line for it to REFERENCE" for name, (_, files) in sorted(reads.items()) if name not in listed]
    found += [f"{name} is in imgsite/settings_reference.py but no code reads it: remove its line"
              for name in listed if name not in reads]
    return found


def shown_default(source):
    """A default as the page shows it: plain literals as values, anything computed as its code."""
    if source is None:
        return "unset"
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return f"`{source}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def render(root=ROOT):
    """docs/settings.md."""
    reads = environment_reads(root)
    lines = [
        "# Settings reference",
        "",
        "Every environment variable imgsite reads, with its default and the tier it concerns: **web** (gunicorn),",
        "**worker** (Celery on the worker nodes), **autoscaler** (`manage.py autoscale`), **provision**",
        "(`manage.py provision`) and **local** (`make run`). A bad value stops start-up with a message naming it.",
        "",
        "Generated by `python manage.py settings_reference --write` from `imgsite/settings_reference.py` and the",
        "code's own defaults; edit those, not this page. Where a default is code, it is the expression in",
        "`imgsite/settings/`.",
    ]
    for section, rows in REFERENCE.items():
        lines += ["", f"## {section}", "", "| variable | default | tier | meaning |", "|---|---|---|---|"]
        for name, tiers, meaning, default in rows:
            shown = default if default is not None else shown_default(reads.get(name, (None,))[0])
            lines.append(f"| `{name}` | {shown.replace('|', '∣')} | {', '.join(tiers)} | {meaning} |")
    return "\n".join(lines) + "\n"
