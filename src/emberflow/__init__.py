"""emberflow: an offline, edge-first AI service framework.

Kept import-light on purpose: `emberflow --help` must not pull in zmq, numpy or model runtimes.
"""

__version__ = "0.1.0"
# What `sys.version` answers. StackFlow clients branch on ">= v1.6" (model names, features).
STACKFLOW_VERSION = "v1.6"
