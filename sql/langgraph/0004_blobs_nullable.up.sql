-- langgraph v4: a blob may be NULL (an empty channel).
ALTER TABLE checkpoint_blobs ALTER COLUMN blob DROP NOT NULL;
