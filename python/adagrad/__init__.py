from ._core import cpu_info
