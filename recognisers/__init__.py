"""Plumbing shared by the two recognisers (`captcha`, `vqa`).

Only what both need in the same way lives here: user-facing errors and the CLI wrapper,
atomic model directories with a versioned ``meta.json``, reports, seeding and training
history. Nothing model-specific.
"""

__version__ = "0.1.0"
