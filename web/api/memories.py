"""Memories: private to their owner, never sent to any outside service."""

from flask_smorest import Blueprint

from recommender import memories
from recommender.care import care_document, screen_texts
from web.api.auth_token import BEARER, current_user_id, token_required
from web.api.schemas import ErrorOut, MemoriesOut, MemoryIn, MemoryOut, MemoryPatch
from web.db import get_db


def _with_care(memory) -> dict:
    """The memory, and a gentle care card when its words speak of self-harm."""
    doc = memories.memory_document(memory)
    verdict = screen_texts(memory.title, memory.text)
    if verdict.crisis:
        doc["care"] = care_document(verdict)
    return doc


blp = Blueprint("memories", __name__, url_prefix="/api/v1/memories", description="Memories")


@blp.route("", methods=["POST"])
@blp.arguments(MemoryIn)
@blp.response(201, MemoryOut)
@blp.doc(security=BEARER)
@token_required
def create(body):
    """Keep a memory that prompts can point to."""
    return _with_care(memories.add_memory(get_db(), current_user_id(), body))


@blp.route("", methods=["GET"])
@blp.response(200, MemoriesOut)
@blp.doc(security=BEARER)
@token_required
def list_all():
    """The caller's memories, newest first."""
    return {"memories": [memories.memory_document(m)
                         for m in memories.list_memories(get_db(), current_user_id())]}


@blp.route("/<memory_id>", methods=["GET"])
@blp.response(200, MemoryOut)
@blp.alt_response(404, schema=ErrorOut)
@blp.doc(security=BEARER)
@token_required
def read(memory_id):
    """One of the caller's memories."""
    return memories.memory_document(memories.get_memory(get_db(), current_user_id(), memory_id))


@blp.route("/<memory_id>", methods=["PATCH"])
@blp.arguments(MemoryPatch)
@blp.response(200, MemoryOut)
@blp.alt_response(404, schema=ErrorOut)
@blp.doc(security=BEARER)
@token_required
def patch(body, memory_id):
    """Change any subset of a memory's fields."""
    return _with_care(memories.update_memory(get_db(), current_user_id(), memory_id, body))


@blp.route("/<memory_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorOut)
@blp.doc(security=BEARER)
@token_required
def remove(memory_id):
    """Forget a memory."""
    memories.delete_memory(get_db(), current_user_id(), memory_id)
