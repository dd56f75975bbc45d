"""The ``captcha-vqa`` command: one front door for both recognisers (today: ``serve``).

``serve`` puts a CAPTCHA model, a VQA model or both behind an HTTP API and a web page
(:mod:`captcha_vqa.app`); the other modules are its parts: limits and defaults
(:mod:`~captcha_vqa.config`), loading the models (:mod:`~captcha_vqa.models`), turning request
bodies into image arrays (:mod:`~captcha_vqa.uploads`) and batching concurrent requests
(:mod:`~captcha_vqa.batching`).
"""
