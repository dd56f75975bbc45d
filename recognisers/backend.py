"""The quiet TensorFlow/Keras import: no C++ start-up lines on a user's terminal.

Every module that needs Keras imports it through :func:`import_keras` (or calls
:func:`quiet_tensorflow` before anything imports TensorFlow), so that ``import captcha`` and
``import vqa`` print nothing and a CLI error stays the one line it should be.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ log lines; must run before TensorFlow is imported.

    Level 3 also hides its E-level notes (no CUDA driver, oneDNN fallbacks), which are not
    errors for our users; real failures still arrive as Python exceptions.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keep_freed_memory()


# glibc's mallopt parameters (malloc.h) by the environment variable that sets each at start-up,
# and the values set: freed memory up to 1 GiB stays in the process, the heap grows 256 MiB at
# a time, and blocks under 32 MiB (the most glibc allows) come from the heap
_MALLOPT = {
    "MALLOC_TRIM_THRESHOLD_": (-1, 1 << 30),  # M_TRIM_THRESHOLD
    "MALLOC_TOP_PAD_": (-2, 256 << 20),  # M_TOP_PAD
    "MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20),  # M_MMAP_THRESHOLD
}


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep the memory TensorFlow frees instead of returning it to the system.

    TensorFlow on the CPU allocates and frees its tensors through malloc on every step; with
    glibc's defaults, free memory at the top of the heap beyond a small threshold goes back to
    the system (and blocks over the mmap threshold are fresh mmaps), so every step pays page
    faults for memory it just gave back. On these (virtual) machines a page fault is
    expensive: training the attention VQA model spent a third of its time in the kernel (sys
    12.7 s of 36 s), and with this 2 s, each step 28% faster (median 97 against 134 ms, same
    losses). Returns whether it applied: not on a libc without ``mallopt``, nor when the user
    set any of the variables in ``_MALLOPT`` (theirs win).
    """
    if any(name in os.environ for name in _MALLOPT):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in _MALLOPT.values())


def import_keras():
    """Import TensorFlow and Keras with the C++ start-up lines hidden; return ``keras``.

    Those lines (oneDNN, CUDA probing) are printed before TensorFlow's logging is set up and
    ignore TF_CPP_MIN_LOG_LEVEL; without this, a CLI error would not be the one clear line on
    stderr it should be. Later ``import keras`` statements are then free.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    quiet_tensorflow()
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow

        tensorflow.constant(0)  # device start-up (CUDA probing) prints too
        tensorflow.get_logger().setLevel("ERROR")  # retracing notes are for developers, not users
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX, read from Linux's
    /proc/cpuinfo once a process): there oneDNN's bfloat16 convolutions run at about twice
    float32's speed; elsewhere they are emulated or missing, so float32 is the safe answer."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split()))
    except OSError:
        pass
    return False
