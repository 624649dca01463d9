"""imgsite settings: one settings module (imgsite.settings), driven by the environment and
failing loudly on bad values, written as one file per concern and read in this order.

Every variable read here has a line in imgsite/settings_reference.py, the source of docs/settings.md;
tests/imgsite/test_settings_reference.py fails on one that does not."""
from imgsite.settings.accounts import *  # noqa: F403
from imgsite.settings.autoscaler import *  # noqa: F403
from imgsite.settings.aws import *  # noqa: F403
from imgsite.settings.core import *  # noqa: F403
from imgsite.settings.env import *  # noqa: F403
from imgsite.settings.gallery import *  # noqa: F403
from imgsite.settings.operations import *  # noqa: F403
from imgsite.settings.security import *  # noqa: F403
from imgsite.settings.tasks import *  # noqa: F403
from imgsite.settings.uploads import *  # noqa: F403
from imgsite.settings.worker import *  # noqa: F403
