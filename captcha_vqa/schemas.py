"""The JSON shapes of the API (requests and responses), as pydantic models for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from captcha_vqa.config import ServeConfig

LIMITS = ServeConfig()


class ErrorBody(BaseModel):
    """Every error: the status code says what kind, ``detail`` says what was wrong."""

    detail: str


class Character(BaseModel):
    char: str
    probability: float
    box: list[int] = Field(description="x0, y0, x1, y1 in the image's pixels (x1, y1 exclusive)")


class CaptchaResult(BaseModel):
    text: str
    confidence: float = Field(description="product of the per-character probabilities")
    characters: list[Character]
    reader: str = Field(description="which CAPTCHA reader read it (segment, sequence, ...)")
    ms: float = Field(description="milliseconds the request spent in the server")


class CaptchaResponse(BaseModel):
    results: list[CaptchaResult] = Field(description="one per image, in the order sent")


class Answer(BaseModel):
    answer: str
    probability: float


class VQAResult(BaseModel):
    question: str
    answers: list[Answer] = Field(description="most probable first")


class VQAResponse(BaseModel):
    results: list[VQAResult] = Field(description="one per question, in the order sent")


class Health(BaseModel):
    status: str
    captcha: bool
    vqa: bool


class ModelsResponse(BaseModel):
    captcha: dict[str, Any] | None = Field(description="null when no CAPTCHA model is loaded")
    vqa: dict[str, Any] | None = Field(description="null when no VQA model is loaded")


class CaptchaJson(BaseModel):
    images: list[str] = Field(
        min_length=1, max_length=LIMITS.max_images, description="base64 images or data URIs"
    )


class VQAJson(BaseModel):
    image: str = Field(description="a base64 image or a data URI")
    questions: list[str] = Field(min_length=1, max_length=LIMITS.max_questions)
    top: int = Field(1, ge=1, le=LIMITS.max_top)


def multipart_schema(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required}


FILE = {"type": "string", "format": "binary"}
CAPTCHA_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": multipart_schema(
                {"image": {"type": "array", "items": FILE, "minItems": 1, "maxItems": LIMITS.max_images}},
                ["image"],
            )
        },
        "application/json": {"schema": CaptchaJson.model_json_schema()},
    },
}
VQA_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": multipart_schema(
                {
                    "image": FILE,
                    "question": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": LIMITS.max_questions,
                    },
                    "top": {"type": "integer", "minimum": 1, "maximum": LIMITS.max_top},
                },
                ["image", "question"],
            )
        },
        "application/json": {"schema": VQAJson.model_json_schema()},
    },
}
