"""The site's ``roles``, ``level`` and ``vm_number`` grains, read from the VM's name.

The WebPlatform VMs were named for what they do: ``db1-masterdb.production.wpdn`` is a
``db`` and a ``masterdb`` VM of the ``production`` cluster. The digits only number VMs of
one role, so they are dropped from the roles and kept as ``vm_number``. The name is the
minion id, which Salt sets to the FQDN unless told otherwise; unlike the machine's hostname
it also tells apart minions that share a host. A static ``roles`` or ``level`` grain in the minion config overrides these.
"""

import re

# The internal domain: <host>.<level>.wpdn
INTERNAL_DOMAIN = "wpdn"
DEFAULT_LEVEL = "production"


def _name():
    return str(__opts__.get("id") or __grains__.get("fqdn") or "")


def roles():
    """``db1-masterdb.staging.wpdn`` -> ``{"roles": ["db", "masterdb"]}``."""
    host = _name().split(".")[0]
    found = []
    for part in host.split("-"):
        role = re.sub(r"[0-9]", "", part)
        if role and role not in found:
            found.append(role)
    return {"roles": found}


def vm_number():
    """``db2-masterdb`` -> ``{"vm_number": 2}``: which VM of its role this is (1 if unnumbered)."""
    digits = re.sub(r"[^0-9]", "", _name().split(".")[0].split("-")[0])
    return {"vm_number": int(digits) if digits else 1}


def level():
    """``app1.staging.wpdn`` -> ``{"level": "staging"}``; any other name is production."""
    labels = _name().split(".")
    if len(labels) == 3 and labels[2] == INTERNAL_DOMAIN and labels[1]:
        return {"level": labels[1]}
    return {"level": DEFAULT_LEVEL}
