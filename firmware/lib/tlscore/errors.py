# The one exception the engine raises internally: a protocol failure that carries the
# TLS alert to send and a human reason. The connection turns it into a fatal alert,
# a closed state and an event; it never escapes to the caller as a traceback.

from .constants import alert_name


class TLSError(Exception):
    def __init__(self, alert, reason):
        super().__init__(reason)
        self.alert = alert
        self.reason = reason

    def __str__(self):
        return "%s: %s" % (alert_name(self.alert), self.reason)
