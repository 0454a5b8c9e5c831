"""The template-driven local runtime: runs a SAM template against moto, with real worker processes.

``template.yaml`` is the single source of truth: nothing about functions, queues or wiring is listed
here. See ``LocalStack`` and ``StackOptions``.
"""

from local.runtime.resources import NotEmulated, Resource
from local.runtime.stack import InvocationRecord, InvocationResult, LocalStack, StackOptions
from local.runtime.template import TemplateError

__all__ = [
    "InvocationRecord",
    "InvocationResult",
    "LocalStack",
    "NotEmulated",
    "Resource",
    "StackOptions",
    "TemplateError",
]
