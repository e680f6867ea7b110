"""``python -m hub.settings``: print the README's configuration table from the declarations."""

import sys

from hub.settings import configuration_table

sys.stdout.write(configuration_table())
