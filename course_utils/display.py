"""Showing the package's own source in a notebook, so prose and code never drift apart."""
from __future__ import annotations

import inspect


def show_source(obj) -> None:
    """Display the source of a function, class or module from ``course_utils``."""
    source = inspect.getsource(obj)
    try:
        from IPython.display import Code, display

        display(Code(source, language="python"))
    except ImportError:  # plain Python: just print it
        print(source)
