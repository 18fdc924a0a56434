-- langgraph v2: channel values, referenced from checkpoint->'channel_versions'.
-- blob is created NOT NULL, as LangGraph's v2 first did; v4 relaxes it. The
-- library's current v2 creates it nullable, so v4 is a no-op there. Both
-- paths end at the same v4 shape, and keeping v4 meaningful is what lets its
-- down step be a real, checked inverse.
CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);
