"""Run localstripe bound to 127.0.0.1 only (its own CLI binds every interface), in memory."""

import argparse
import logging

from aiohttp import web
from localstripe import resources
from localstripe.server import app

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
# Keep state in memory: the stock server dumps its whole store to a fixed /tmp file per write.
resources.Store.dump_to_disk = lambda self: None
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
web.run_app(app, host="127.0.0.1", port=args.port, print=None)
