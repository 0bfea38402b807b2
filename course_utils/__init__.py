"""course_utils: the code behind the course notebooks, one concern per module.

Start with ``from course_utils import config; config.setup()``.
"""
__version__ = "0.1.0"
