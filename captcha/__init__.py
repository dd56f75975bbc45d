"""Read CAPTCHA images: OpenCV segmentation into glyphs + a Keras CNN per glyph, or a sequence reader.

Every reader follows one contract (``recognisers.contract``)::

    model = CaptchaReader(ReaderConfig()).fit(load_folder("data/train"))
    model.save("runs/m"); model = CaptchaReader.load("runs/m")
    model.predict("x.png").text; model.evaluate(load_folder("data/test")).metrics

:class:`CaptchaReader` trains and chooses a reader; :class:`CaptchaSolver` (segmenting) and
:class:`captcha.sequence.SequenceReader` can be used on their own.
"""

from captcha.data import load_folder
from captcha.model import CaptchaSolver, Reading, SegmentConfig
from captcha.readers import CaptchaReader, ReaderConfig

__all__ = ["CaptchaReader", "CaptchaSolver", "Reading", "ReaderConfig", "SegmentConfig", "load_folder"]
