"""A realistic execute response: video segments with transcripts, thumbnails and lineage.

The sample namespace of the test kit is small and tidy; real video retrievers answer with
much more per document: a transcript excerpt, a generated description, a presigned S3
thumbnail URL (its signature alone is ~250 characters), a short playable video link,
metadata, lineage and timestamps, plus bulky ``stage_statistics`` and ``budget`` blocks.
:func:`realistic_response` builds such a body, deterministically, so the token and cost
figures measure what a model would really be sent. Ten documents come to about 19 KB.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

__all__ = ["REALISTIC_QUERY", "realistic_response"]

REALISTIC_QUERY = "how to configure the CRM integration webhook"
"""A query whose words occur in some of the transcripts (for query-aware excerpts)."""

_TOPICS = [
    ("CRM integration walkthrough", "integrations", ["crm", "webhook", "setup"]),
    ("Quarterly roadmap keynote", "keynotes", ["roadmap", "product", "q3"]),
    ("Billing dashboard tour", "billing", ["billing", "invoices", "dashboard"]),
    ("Onboarding for new admins", "onboarding", ["admin", "permissions", "sso"]),
    ("Mobile app release notes", "releases", ["mobile", "ios", "android"]),
    ("Data export deep dive", "data", ["export", "csv", "warehouse"]),
    ("Customer story: logistics", "customers", ["logistics", "case-study"]),
    ("Security and compliance update", "security", ["soc2", "audit", "encryption"]),
]

_SENTENCES = [
    "In this segment the presenter opens the settings page and explains each option in turn.",
    "To configure the CRM integration, paste the webhook URL into the integration panel.",
    "The webhook fires on every new deal, so the sales team sees updates within a second.",
    "She then shows how the sync handles duplicate contacts without creating new records.",
    "Next, the dashboard filters are narrowed to the last quarter to compare the results.",
    "The audience asks about rate limits, and the answer is that bursts are queued safely.",
    "A short demo follows where an invoice is generated, reviewed and sent to a customer.",
    "Finally, the team summarises the changes and points to the documentation for details.",
    "Permissions are granted per workspace, and admins can revoke them at any moment.",
    "The export runs nightly and lands in the warehouse as partitioned files by date.",
]


def _presigned_url(rng: random.Random, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    credential = "ASIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
    return (
        f"https://mixpeek-media.s3.us-east-1.amazonaws.com/thumbnails/{key}.jpg"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}%2F20261201%2F"
        f"us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T120000Z&X-Amz-Expires=3600"
        f"&X-Amz-Security-Token={token}&X-Amz-SignedHeaders=host&X-Amz-Signature={digest}"
    )


def _document(rng: random.Random, index: int, score: float) -> dict[str, Any]:
    title, category, tags = _TOPICS[index % len(_TOPICS)]
    start = rng.randint(0, 3000)
    key = f"seg_{index:04d}_{start}"
    sentences = rng.sample(_SENTENCES, 4)
    if index % 3 == 1:
        sentences[2] = _SENTENCES[1]  # some transcripts mention the query's words
    return {
        "document_id": f"doc_{hashlib.md5(key.encode()).hexdigest()[:20]}",
        "collection_id": "col_video_segments_prod",
        "score": score,
        "text": " ".join(sentences),
        "description": (
            f"A {category} video segment titled '{title}'. "
            f"It covers {', '.join(tags)} in about {rng.randint(20, 90)} seconds."
        ),
        "thumbnail_url": _presigned_url(rng, key),
        "video_url": f"https://cdn.example.com/v/{key}.mp4",
        "start_time": float(start),
        "end_time": float(start + rng.randint(20, 90)),
        "metadata": {
            "title": title,
            "category": category,
            "tags": tags,
            "duration_s": rng.randint(600, 3600),
            "language": "en",
        },
        "root_object_id": f"obj_{hashlib.md5(title.encode()).hexdigest()[:16]}",
        "lineage": {
            "source_object_id": f"obj_{hashlib.md5(title.encode()).hexdigest()[:16]}",
            "feature_extractor": "video_segmenter_v2",
            "extractor_version": "2.4.1",
            "batch_id": f"batch_{rng.randint(10**8, 10**9)}",
        },
        "created_at": f"2026-11-{1 + index % 28:02d}T10:{index % 60:02d}:00Z",
        "updated_at": f"2026-11-{1 + index % 28:02d}T11:{index % 60:02d}:00Z",
    }


def realistic_response(n_docs: int = 10, *, seed: int = 7) -> dict[str, Any]:
    """An execute response body of ``n_docs`` video-segment documents (deterministic)."""
    rng = random.Random(seed)
    scores = sorted((round(rng.uniform(0.45, 0.95), 6) for _ in range(n_docs)), reverse=True)
    documents = [_document(rng, i, s) for i, s in enumerate(scores)]
    stages = {
        name: {
            "input_count": rng.randint(100, 5000),
            "output_count": n_docs,
            "duration_ms": round(rng.uniform(5, 80), 3),
            "efficiency": round(rng.random(), 4),
            "cache_hit": False,
            "details": {
                "shards": 12,
                "candidates": rng.randint(1000, 9000),
                "per_shard_ms": [round(rng.uniform(1, 20), 3) for _ in range(12)],
                "per_shard_candidates": [rng.randint(100, 1200) for _ in range(12)],
            },
        }
        for name in (
            "feature_search",
            "attribute_filter",
            "rerank",
            "deduplicate",
            "group_by",
            "llm_enrich",
        )
    }
    return {
        "retriever_id": "ret_video_segments",
        "execution_id": f"exec_{hashlib.md5(str(seed).encode()).hexdigest()[:12]}",
        "status": "completed",
        "documents": documents,
        "pagination": {
            "method": "offset",
            "limit": n_docs,
            "returned": n_docs,
            "total": n_docs * 4,
            "cursor": None,
            "has_next": True,
        },
        "stage_statistics": {
            "stages": stages,
            "total_time_ms": round(sum(s["duration_ms"] for s in stages.values()), 3),
            "credits_used": 0.04,
        },
        "budget": {"credits_used": 0.04, "time_used_ms": 181, "limit_credits": 10.0},
        "warnings": [],
    }
