"""Run @@NAME@@: ``python -m @@MODULE@@`` (or the ``@@ID@@`` command).

Environment:

``FAXBOT_PLUGIN_LISTEN``
    ``host:port`` to listen on; default ``127.0.0.1:8090``. Keep the loopback host in a pod: the Faxbot
    server reaches its sidecar over the pod's loopback. Port 0 picks a free port.
``FAXBOT_PLUGIN_TOKEN``
    The token the Faxbot server presents (its credential ``pluginToken``). Unset: no authentication, for
    local development only.
``FAXBOT_PLUGIN_WEBHOOK_SECRET``
    The key of the provider's callback signatures. Unset: every callback is refused as unauthenticated.

Once it listens it prints one line, ``listening on http://HOST:PORT`` (the real port), to stdout.
"""

import logging
import os
import sys
from typing import Tuple

from faxbot_plugin_kit import ManifestError, serve

from . import FaxPlugin

DEFAULT_LISTEN = "127.0.0.1:8090"


def parse_listen(value: str) -> Tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a host and a port number."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port, e.g. %s" % DEFAULT_LISTEN)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_listen(os.environ.get("FAXBOT_PLUGIN_LISTEN") or DEFAULT_LISTEN)
    except ValueError as e:
        print("FAXBOT_PLUGIN_LISTEN: %s" % e, file=sys.stderr)
        return 2
    token = os.environ.get("FAXBOT_PLUGIN_TOKEN") or None
    if token is None:
        print("warning: FAXBOT_PLUGIN_TOKEN is not set; every route is open to anything that can reach "
              "the port", file=sys.stderr)
    plugin = FaxPlugin(webhook_secret=os.environ.get("FAXBOT_PLUGIN_WEBHOOK_SECRET") or None)
    try:
        # Blocks until SIGTERM or Ctrl-C; prints the "listening on" line once bound.
        serve(plugin, host, port, token=token)
    except ManifestError as e:
        print(e, file=sys.stderr)
        return 1
    except OSError as e:
        print("cannot listen on %s:%d: %s" % (host, port, e.strerror or e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
