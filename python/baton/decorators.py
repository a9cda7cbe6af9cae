"""Step and flow decorators. Each records what it means on the function
(or class); the generator maps it to the baton step or trigger and the
task reads it back (catch, retry count)."""


def _step_deco(kind, defaults):
    def deco(f=None, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError("@%s got unknown arguments: %s" % (kind, ", ".join(sorted(unknown))))
        attrs = dict(defaults)
        attrs.update(kwargs)

        def apply(func):
            if not hasattr(func, "_baton_decos"):
                func._baton_decos = {}
            func._baton_decos[kind] = attrs
            return func

        if f is not None and callable(f):  # bare @retry
            return apply(f)
        return apply

    deco.__name__ = kind
    return deco


# Metaflow's defaults: @retry retries 3 times, 2 minutes apart.
retry = _step_deco("retry", {"times": 3, "minutes_between_retries": 2})
timeout = _step_deco("timeout", {"seconds": 0, "minutes": 0, "hours": 0})
catch = _step_deco("catch", {"var": None, "print_exception": True})
resources = _step_deco("resources", {"cpu": None, "memory": None, "gpu": None, "disk": None, "shared_memory": None})


def _flow_deco(kind, defaults):
    def deco(cls=None, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError("@%s got unknown arguments: %s" % (kind, ", ".join(sorted(unknown))))
        attrs = dict(defaults)
        attrs.update(kwargs)

        def apply(c):
            lst = list(c.__dict__.get("_baton_flow_decos", []))
            lst.append((kind, attrs))
            c._baton_flow_decos = lst
            return c

        if cls is not None and isinstance(cls, type):
            return apply(cls)
        return apply

    deco.__name__ = kind
    return deco


trigger = _flow_deco("trigger", {"event": None, "events": None})
trigger_on_finish = _flow_deco("trigger_on_finish", {"flow": None, "flows": None})
schedule = _flow_deco("schedule", {"cron": None, "hourly": False, "daily": False, "weekly": False, "timezone": None})


class CaughtException(object):
    """What @catch(var=...) stores: the step's exception, picklable even
    when the exception itself is not."""

    def __init__(self, exc, tb):
        self.type = "%s.%s" % (type(exc).__module__, type(exc).__name__)
        self.exception = str(exc)
        self.stacktrace = tb

    def __repr__(self):
        return "CaughtException(%s: %s)" % (self.type, self.exception)

    __str__ = __repr__
