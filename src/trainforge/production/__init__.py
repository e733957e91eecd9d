"""Production tools: the training dashboard (more to come: export bundle, triggers).

Layer 3: imports tracking, checkpoint and engine, never train or cli.
"""

from trainforge.production._dashboard import Dashboard

__all__ = ["Dashboard"]
