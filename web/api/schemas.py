"""Request and response schemas of the JSON API (they also make its OpenAPI document)."""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from recommender.cry_sessions import REACTIONS
from recommender.exports import FILE_TARGETS
from recommender.features import EXPLORATION_MODES
from recommender.vocabulary import default_vocabulary


def _nul_paths(value, path: str = "") -> list[str]:
    """Where a NUL character hides in a decoded body (no database stores one)."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in _nul_paths(k, path) + _nul_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nul_paths(v, f"{path}.{i}")]
    return []


class Strict(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def refuse_nul_characters(self, data, **kwargs):
        paths = _nul_paths(data)
        if paths:
            raise ValidationError({p or "_schema": ["must not contain the NUL character"]
                                   for p in paths})
        return data


def known_mood(value: str) -> None:
    moods = default_vocabulary().mood_ids
    if value not in moods:
        raise ValidationError(f"unknown mood {value!r}; known moods: {', '.join(moods)}")


class Credentials(Strict):
    username = fields.String(required=True, validate=validate.Length(min=3, max=64))
    password = fields.String(required=True, validate=validate.Length(
        min=8, max=1024, error="password must be at least 8 characters"), load_only=True)


class Registered(Schema):
    user_id = fields.String()
    token = fields.String()


class TokenOut(Schema):
    token = fields.String()


class MoodOut(Schema):
    id = fields.String()
    label = fields.String()
    description = fields.String()


class MoodsOut(Schema):
    moods = fields.List(fields.Nested(MoodOut))


class ItemsQuery(Strict):
    kind = fields.String(validate=validate.OneOf(("song", "film")))
    mood = fields.String(validate=known_mood)
    q = fields.String(validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class CatalogItemOut(Schema):
    item_id = fields.String()
    kind = fields.String()
    title = fields.String()
    artist = fields.String(allow_none=True)
    director = fields.String(allow_none=True)
    year = fields.Integer(allow_none=True)
    duration_s = fields.Integer()
    duration_estimated = fields.Boolean()
    intensity = fields.Integer()
    tags = fields.List(fields.String())
    spotify_uri = fields.String(allow_none=True)
    aftercare = fields.Boolean()


class ItemsOut(Schema):
    items = fields.List(fields.Nested(CatalogItemOut))
    total = fields.Integer()


class SessionRequestIn(Strict):
    moods = fields.List(fields.String(validate=known_mood), load_default=list,
                        validate=validate.Length(max=11))
    prompt = fields.String(allow_none=True, load_default=None,
                           validate=validate.Length(max=2000))
    minutes = fields.Integer(load_default=45, validate=validate.Range(
        min=5, max=240, error="minutes must be between 5 and 240"))
    intensity = fields.Integer(load_default=3, validate=validate.Range(
        min=1, max=5, error="intensity must be between 1 and 5"))
    include_films = fields.Boolean(load_default=True)
    exploration = fields.String(load_default="balanced",
                                validate=validate.OneOf(EXPLORATION_MODES))

    @validates_schema
    def moods_or_prompt(self, data, **kwargs):
        if not data.get("moods") and not (data.get("prompt") or "").strip():
            raise ValidationError("send moods, a prompt, or both", field_name="moods")


class PromptOut(Schema):
    technique = fields.String()
    text = fields.String()
    memory_id = fields.String(allow_none=True)


class SessionItemOut(Schema):
    position = fields.Integer()
    item_id = fields.String()
    kind = fields.String()
    title = fields.String()
    artist = fields.String(allow_none=True)
    director = fields.String(allow_none=True)
    year = fields.Integer(allow_none=True)
    duration_s = fields.Integer()
    tags = fields.List(fields.String())
    phase = fields.String()
    prompt = fields.Nested(PromptOut)
    why = fields.String()
    spotify_uri = fields.String(allow_none=True)


class ResourceOut(Schema):
    name = fields.String()
    contact = fields.String()
    url = fields.String()
    region = fields.String()


class CareOut(Schema):
    crisis = fields.Boolean()
    resources = fields.List(fields.Nested(ResourceOut))
    message = fields.String()
    aftercare = fields.List(fields.String())
    not_therapy = fields.String()


class ReactionIn(Strict):
    item_id = fields.String(required=True)
    reaction = fields.String(required=True, validate=validate.OneOf(REACTIONS))


class ReactionOut(Schema):
    item_id = fields.String()
    reaction = fields.String()


class FeedbackIn(Strict):
    reactions = fields.List(fields.Nested(ReactionIn), required=True,
                            validate=validate.Length(max=200))
    catharsis = fields.Integer(allow_none=True, load_default=None,
                               validate=validate.Range(min=1, max=5))
    mood_before = fields.Integer(allow_none=True, load_default=None,
                                 validate=validate.Range(min=1, max=10))
    mood_after = fields.Integer(allow_none=True, load_default=None,
                                validate=validate.Range(min=1, max=10))
    note = fields.String(allow_none=True, load_default=None,
                         validate=validate.Length(max=10000))


class FeedbackOut(Schema):
    reactions = fields.List(fields.Nested(ReactionOut))
    catharsis = fields.Integer(allow_none=True)
    mood_before = fields.Integer(allow_none=True)
    mood_after = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    updated_at = fields.String()


class SessionOut(Schema):
    id = fields.String()
    created_at = fields.String()
    model_version = fields.String()
    moods = fields.List(fields.String())
    themes = fields.List(fields.String())
    request = fields.Dict()
    total_duration_s = fields.Integer()
    care = fields.Nested(CareOut)
    items = fields.List(fields.Nested(SessionItemOut))


class SessionWithFeedbackOut(SessionOut):
    feedback = fields.Nested(FeedbackOut, allow_none=True)


class SessionsOut(Schema):
    sessions = fields.List(fields.Nested(SessionWithFeedbackOut))


class Recorded(Schema):
    session_id = fields.String()
    recorded = fields.Integer()
    care = fields.Nested("CareOut", metadata={
        "description": "Present when the journal note speaks of self-harm: help, gently."})


class ExportIn(Strict):
    target = fields.String(required=True,
                           validate=validate.OneOf(("spotify", *FILE_TARGETS)))


class SpotifyExportOut(Schema):
    export_id = fields.String()
    status = fields.String()
    playlist_url = fields.String(allow_none=True)
    added = fields.Integer()
    unmatched = fields.List(fields.String())
    retry_after_s = fields.Integer(allow_none=True)


class MemoryIn(Strict):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    text = fields.String(load_default="", validate=validate.Length(max=20000))
    tags = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                       validate=validate.Length(max=50))
    people = fields.List(fields.String(validate=validate.Length(max=100)), load_default=list,
                         validate=validate.Length(max=50))
    places = fields.List(fields.String(validate=validate.Length(max=100)), load_default=list,
                         validate=validate.Length(max=50))
    when = fields.String(allow_none=True, load_default=None,
                         validate=validate.Length(max=200))


class MemoryPatch(Strict):
    title = fields.String(validate=validate.Length(min=1, max=200))
    text = fields.String(validate=validate.Length(max=20000))
    tags = fields.List(fields.String(validate=validate.Length(max=64)),
                       validate=validate.Length(max=50))
    people = fields.List(fields.String(validate=validate.Length(max=100)),
                         validate=validate.Length(max=50))
    places = fields.List(fields.String(validate=validate.Length(max=100)),
                         validate=validate.Length(max=50))
    when = fields.String(allow_none=True, validate=validate.Length(max=200))


class MemoryOut(Schema):
    care = fields.Nested("CareOut", metadata={
        "description": "Present when the memory speaks of self-harm: help, gently."})
    id = fields.String()
    title = fields.String()
    text = fields.String()
    tags = fields.List(fields.String())
    people = fields.List(fields.String())
    places = fields.List(fields.String())
    when = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()


class MemoriesOut(Schema):
    memories = fields.List(fields.Nested(MemoryOut))


class MeOut(Schema):
    user_id = fields.String()
    username = fields.String()
    spotify_connected = fields.Boolean()


class HealthOut(Schema):
    status = fields.String()
    model_version = fields.String()
    catalog_items = fields.Integer()
    model_fallback = fields.Boolean(
        metadata={"description": "true when the active model failed to load and an older "
                                 "version (or the content baseline) is served instead"})
    model_note = fields.String(allow_none=True)


class ErrorBody(Schema):
    code = fields.String()
    message = fields.String()


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody)
