#!/usr/bin/python3
"""Prints the page cache's dirty and under-writeback page counts of FILE, "DIRTY WRITEBACK",
from the kernel's cachestat(2) (Linux 6.5). The tests use it to check that an image the
service wrote is on disk when the call returns ("0 0"). Swift cannot call syscall(2)."""
import ctypes
import os
import sys


class Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]


SYS_CACHESTAT = 451  # x86_64 and every other architecture with the unified syscall table

if len(sys.argv) != 2:
    sys.exit("usage: unwritten-pages.py FILE")
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
whole, stat = Range(0, 0), Stat()
if libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(whole), ctypes.byref(stat), 0) != 0:
    sys.exit("cachestat(%s): %s" % (sys.argv[1], os.strerror(ctypes.get_errno())))
print(stat.dirty, stat.writeback)
