"""Read CAPTCHA images: OpenCV segmentation into glyphs, a Keras CNN per glyph.

``CaptchaSolver.load(model_dir).predict(path_or_array)`` reads one image; ``predict_batch``
reads many in one pass. Train with ``captcha train`` (or :func:`captcha.train.train`).
"""

from captcha.solver import CaptchaSolver, Reading

__all__ = ["CaptchaSolver", "Reading"]
